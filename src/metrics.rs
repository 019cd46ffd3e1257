//! Prometheus metrics at `metrics.prometheus.endpoint` (off by default, like Lavalink).
//!
//! Lavalink's own series (`lavalink_players_total`, `lavalink_playing_players_total`, uptime,
//! memory, cpu) keep their names; Acoustic adds what Lavalink lacks: frames sent / nulled /
//! deficit for the whole node, voice connections by state, voice handshakes in flight, close codes
//! seen, the pacer's timing, track load latency, and source errors by source.
//!
//! Scrape-time figures are computed when the endpoint is read; counters that must survive players
//! coming and going live here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::node::Node;

type Labels = Vec<(String, String)>;

/// Counters and histograms that outlive a scrape.
#[derive(Debug)]
pub struct Metrics {
    load_latency: Histogram,
    source_errors: Family<Labels, Counter>,
    loads: Family<Labels, Counter>,
    /// Frames of players that no longer exist (so node totals never go down).
    retired_sent: AtomicU64,
    retired_nulled: AtomicU64,
    retired_deficit: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            // 1 ms … ~16 s
            load_latency: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            source_errors: Family::default(),
            loads: Family::default(),
            retired_sent: AtomicU64::new(0),
            retired_nulled: AtomicU64::new(0),
            retired_deficit: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Records one `/v4/loadtracks` (or PATCH identifier) resolution: how long it took, its load
    /// type, and for errors the source that failed.
    pub fn record_load(&self, elapsed: Duration, load_type: &str, source: Option<&str>) {
        self.load_latency.observe(elapsed.as_secs_f64());
        self.loads
            .get_or_create(&vec![("load_type".into(), load_type.into())])
            .inc();
        if load_type == "error" {
            let source = source.unwrap_or("unknown").to_string();
            self.source_errors
                .get_or_create(&vec![("source".into(), source)])
                .inc();
        }
    }

    /// Records a playback failure of a track from `source`.
    pub fn record_source_error(&self, source: &str) {
        self.source_errors
            .get_or_create(&vec![("source".into(), source.to_string())])
            .inc();
    }

    /// Keeps a destroyed player's frame counts in the node totals.
    pub fn retire_frames(&self, sent: u64, nulled: u64, deficit: u64) {
        self.retired_sent.fetch_add(sent, Ordering::Relaxed);
        self.retired_nulled.fetch_add(nulled, Ordering::Relaxed);
        self.retired_deficit.fetch_add(deficit, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self, node: &Node) -> String {
        let mut r = Registry::default();
        let stats = node.stats();

        r.register(
            "lavalink_players_total",
            "Players across all sessions",
            ConstGauge::new(stats.players),
        );
        r.register(
            "lavalink_playing_players_total",
            "Players with a track that are not paused",
            ConstGauge::new(stats.playing_players),
        );
        r.register(
            "lavalink_uptime_milliseconds",
            "Milliseconds since the node started",
            ConstGauge::new(stats.uptime),
        );
        for (name, help, v) in [
            (
                "lavalink_memory_free_bytes",
                "Memory held but unused",
                stats.memory.free,
            ),
            (
                "lavalink_memory_used_bytes",
                "Resident memory",
                stats.memory.used,
            ),
            (
                "lavalink_memory_allocated_bytes",
                "Memory held by the process",
                stats.memory.allocated,
            ),
            (
                "lavalink_memory_reservable_bytes",
                "Memory the process may grow to",
                stats.memory.reservable,
            ),
        ] {
            r.register(name, help, ConstGauge::new(v));
        }
        r.register(
            "lavalink_cpu_cores",
            "Logical CPUs",
            ConstGauge::new(stats.cpu.cores),
        );
        r.register(
            "lavalink_cpu_system_load_percentage",
            "Whole-machine CPU load (fraction of all cores, as in /v4/stats)",
            ConstGauge::new(stats.cpu.system_load),
        );
        r.register(
            "lavalink_cpu_lavalink_load_percentage",
            "This process's CPU load (fraction of all cores, as in /v4/stats)",
            ConstGauge::new(stats.cpu.lavalink_load),
        );

        let (mut sent, mut nulled, mut deficit) = (
            self.retired_sent.load(Ordering::Relaxed),
            self.retired_nulled.load(Ordering::Relaxed),
            self.retired_deficit.load(Ordering::Relaxed),
        );
        for s in node.sessions.all() {
            for p in s.players() {
                let (a, b, c) = p.frame_totals();
                sent += a;
                nulled += b;
                deficit += c;
            }
        }
        r.register(
            "acoustic_frames_sent",
            "Opus frames handed to the voice sender",
            ConstCounter::new(sent),
        );
        r.register(
            "acoustic_frames_nulled",
            "20 ms slots where a playing player had no frame",
            ConstCounter::new(nulled),
        );
        r.register(
            "acoustic_frames_deficit",
            "20 ms slots a connected player missed because the pacer was late",
            ConstCounter::new(deficit),
        );

        let voice = node.players.voice.metrics();
        r.register(
            "acoustic_voice_handshakes_in_flight",
            "Voice gateway handshakes running now",
            ConstGauge::new(voice.handshakes_in_flight),
        );
        let by_state: Family<Labels, Gauge> = Family::default();
        for (state, v) in [
            ("connecting", voice.connections.connecting),
            ("ready", voice.connections.ready),
            ("reconnecting", voice.connections.reconnecting),
        ] {
            by_state
                .get_or_create(&vec![("state".into(), state.into())])
                .set(v as i64);
        }
        r.register(
            "acoustic_voice_connections",
            "Voice connections by state",
            by_state,
        );
        let closes: Family<Labels, Counter> = Family::default();
        for (code, n) in &voice.close_codes {
            closes
                .get_or_create(&vec![("code".into(), code.to_string())])
                .inc_by(*n);
        }
        r.register(
            "acoustic_voice_close_codes",
            "Voice gateway closes seen, by close code",
            closes,
        );
        let pacer = voice.pacer;
        r.register(
            "acoustic_pacer_ticks",
            "20 ms pacer ticks",
            ConstCounter::new(pacer.ticks),
        );
        r.register(
            "acoustic_pacer_late_ticks",
            "Pacer ticks that started late",
            ConstCounter::new(pacer.late_ticks),
        );
        r.register(
            "acoustic_pacer_packets_sent",
            "Voice packets sent",
            ConstCounter::new(pacer.packets_sent),
        );
        r.register(
            "acoustic_pacer_send_errors",
            "Voice packets the OS refused",
            ConstCounter::new(pacer.send_errors),
        );
        r.register(
            "acoustic_pacer_keepalives_sent",
            "UDP keepalives sent on voice connections without audio",
            ConstCounter::new(pacer.keepalives_sent),
        );
        r.register_with_unit(
            "acoustic_pacer_cpu",
            "CPU time spent by the pacer",
            Unit::Seconds,
            ConstCounter::new(pacer.cpu_us as f64 / 1e6),
        );

        r.register_with_unit(
            "acoustic_track_load_duration",
            "Time to resolve a track identifier",
            Unit::Seconds,
            self.load_latency.clone(),
        );
        r.register(
            "acoustic_track_loads",
            "Track loads by load type",
            self.loads.clone(),
        );
        r.register(
            "acoustic_source_errors",
            "Load and playback errors by source",
            self.source_errors.clone(),
        );

        let mut out = String::new();
        let _ = encode(&mut out, &r);
        out
    }
}
