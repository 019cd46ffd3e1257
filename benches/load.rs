//! The capacity/load benchmark: N players stream through the real node (release build) to the
//! fake Discord server; reports the missed-frame rate, inter-packet gap percentiles at the
//! receiver, the node's CPU and memory; then a burst of voice handshakes while `/v4/stats` is
//! polled, reporting its latency.
//!
//! ```text
//! cargo bench --bench load -- [--players 100] [--kind transcode|passthrough] [--seconds 30]
//!                             [--burst 200] [--no-dave] [--read-ahead BYTES]
//!                             [--filters JSON]
//! ```
//!
//! `--filters` sets every player's filters (a Lavalink filters object, e.g.
//! `'{"timescale":{"speed":1.25,"pitch":1.25}}'`) in the PATCH that starts its track.
//!
//! Missed frames = 20 ms slots the receiver should have got (players × measured seconds × 50)
//! but did not; packets lost in sequence are counted too. A frame the node sent late shows in
//! the gap percentiles.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::node::NodeOptions;
use common::rig::{Rig, RigOptions};
use serde_json::json;

struct Args {
    players: u64,
    kind: String,
    seconds: u64,
    burst: u64,
    dave: bool,
    /// `acoustic.audio.readAheadBytes` for the node (None: the shipped default).
    read_ahead: Option<u64>,
    /// Every player's filters.
    filters: Option<serde_json::Value>,
}

fn args() -> Args {
    let mut a = Args {
        players: 100,
        kind: "transcode".into(),
        seconds: 30,
        burst: 200,
        dave: true,
        read_ahead: None,
        filters: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--players" => a.players = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.players),
            "--kind" => a.kind = it.next().unwrap_or(a.kind),
            "--seconds" => a.seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.seconds),
            "--burst" => a.burst = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.burst),
            "--no-dave" => a.dave = false,
            "--read-ahead" => a.read_ahead = it.next().and_then(|v| v.parse().ok()),
            "--filters" => {
                let json = it.next().unwrap_or_default();
                a.filters = Some(serde_json::from_str(&json).expect("--filters takes JSON"));
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// A long file for the run: the 10 s staircase looped 18 times (3 minutes), stream-copied.
fn long_media(name: &str) -> PathBuf {
    let src = common::media(&format!("staircase/{name}"));
    let dir = common::media_dir().join("load");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    if !out.exists() {
        let ok = std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-stream_loop", "17", "-i"])
            .arg(&src)
            .args(["-c", "copy"])
            .arg(&out)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ffmpeg could not build {}", out.display());
    }
    out
}

/// (utime + stime) seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|r| r.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn rss_mb(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    s.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        * 4096.0
        / 1e6
}

/// Node-wide counters from `/metrics`: frames sent, nulled, deficit; pacer ticks, late ticks.
async fn node_counters(rig: &Rig) -> [f64; 5] {
    let text = rig
        .node
        .http()
        .get(rig.node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    [
        value("acoustic_frames_sent_total"),
        value("acoustic_frames_nulled_total"),
        value("acoustic_frames_deficit_total"),
        value("acoustic_pacer_ticks_total"),
        value("acoustic_pacer_late_ticks_total"),
    ]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let file = match a.kind.as_str() {
        "passthrough" => "staircase.webm",
        _ => "staircase.mp3",
    };
    let media = long_media(file);
    let rig = Rig::start_with(RigOptions {
        dave: a.dave,
        decode_audio: false,
        node: NodeOptions {
            top_yaml: format!(
                "metrics:\n  prometheus:\n    enabled: true\nlogging:\n  level:\n    root: WARN\n    lavalink: WARN\n{}",
                a.read_ahead
                    .map(|n| format!("acoustic:\n  audio:\n    readAheadBytes: {n}\n"))
                    .unwrap_or_default()
            ),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let pid = rig.node.pid().unwrap();
    let idle_rss = rss_mb(pid);
    let mut ws = rig.ws().await;
    let rel = Path::new("load").join(file);
    let track = rig.load(rel.to_str().unwrap()).await;
    drop(media);

    println!(
        "load: {} {} players, DAVE {}, {} s measured{}",
        a.players,
        a.kind,
        if a.dave { "on" } else { "off" },
        a.seconds,
        a.filters
            .as_ref()
            .map(|f| format!(", filters {f}"))
            .unwrap_or_default()
    );
    for g in 1..=a.players {
        let mut body = json!({"track": {"encoded": track["encoded"]}, "voice": rig.voice(g)});
        if let Some(filters) = &a.filters {
            body["filters"] = filters.clone();
        }
        let (s, b) = rig.node.patch_json(&rig.player_path(&ws, g), body).await;
        assert_eq!(s, 200, "{b}");
    }
    for g in 1..=a.players {
        assert!(
            rig.wait_packets(g, 10, Duration::from_secs(60)).await,
            "guild {g} never played"
        );
    }
    // Warm up, then measure.
    tokio::time::sleep(Duration::from_secs(5)).await;
    rig.discord.reset_stats();
    let node0 = node_counters(&rig).await;
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - cpu0) / wall;
    let rss = rss_mb(pid);
    let node1 = node_counters(&rig).await;

    let mut received = 0u64;
    let mut lost = 0u64;
    let mut p99s = Vec::new();
    let mut max_gap = 0f64;
    let mut over40 = 0u64;
    let mut decrypt_failures = 0u64;
    for g in 1..=a.players {
        let r = rig.report(g);
        received += r.packets;
        lost += r.lost_packets;
        decrypt_failures += r.decrypt_failures();
        over40 += r.gaps_over_40ms;
        if let Some(p) = r.gap_p99 {
            p99s.push(p.as_secs_f64() * 1000.0);
        }
        if let Some(m) = r.gap_max {
            max_gap = max_gap.max(m.as_secs_f64() * 1000.0);
        }
    }
    let expected = a.players as f64 * wall * 50.0;
    let missed = (expected - received as f64).max(0.0) + lost as f64;
    let worst_p99 = p99s.iter().cloned().fold(0.0, f64::max);
    let median_p99 = percentile(&mut p99s.clone(), 0.5);
    println!("  packets received      {received} of ~{expected:.0} expected");
    println!(
        "  missed frames         {:.3} %  (lost in sequence: {lost})",
        missed / expected * 100.0
    );
    println!(
        "  gap p99 per stream    median {median_p99:.1} ms, worst {worst_p99:.1} ms; max gap {max_gap:.1} ms; gaps > 40 ms: {over40}"
    );
    println!("  decrypt failures      {decrypt_failures}");
    // The node's own account of the same window: frames it sent, found no audio for (nulled),
    // or had no frame ready for in time (deficit), and pacer ticks that started late. Misses
    // the node does not see were lost between its socket and the receiver.
    let d = |i: usize| node1[i] - node0[i];
    println!(
        "  node frame counters   sent {:.0}, nulled {:.0}, deficit {:.0}; pacer ticks {:.0}, late {:.0}",
        d(0),
        d(1),
        d(2),
        d(3),
        d(4)
    );
    println!(
        "  node CPU              {:.1} % of one core ({:.2} % per player)",
        cpu * 100.0,
        cpu * 100.0 / a.players as f64
    );
    println!(
        "  node RSS              idle {idle_rss:.1} MB, under load {rss:.1} MB ({:.2} MB per player)",
        (rss - idle_rss) / a.players as f64
    );
    let (_, stats) = rig.node.get_json("/v4/stats").await;
    println!(
        "  /v4/stats             players {} playing {} lavalinkLoad {}",
        stats["players"], stats["playingPlayers"], stats["cpu"]["lavalinkLoad"]
    );

    // Stop the players, then the handshake burst.
    for g in 1..=a.players {
        rig.node
            .http()
            .delete(rig.node.url(&rig.player_path(&ws, g)))
            .send()
            .await
            .unwrap();
    }
    if a.burst > 0 {
        let base = 1_000_000u64;
        let bodies: Vec<_> = (0..a.burst)
            .map(|i| (base + i, rig.voice(base + i)))
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Polled from a thread of its own with plain blocking HTTP, so the fake server sharing
        // this process's runtime cannot delay the measurement.
        let poller = {
            let addr = rig.node.addr;
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = blocking_get(addr, "/v4/stats") == 200;
                    lat.push((t.elapsed().as_secs_f64() * 1000.0, ok));
                    std::thread::sleep(Duration::from_millis(10));
                }
                lat
            })
        };
        let t = Instant::now();
        let node = &rig.node;
        let patches = bodies.iter().map(|(g, v)| {
            let path = rig.player_path(&ws, *g);
            let body = json!({"voice": v});
            async move { node.patch_json(&path, body).await }
        });
        let results = futures_util::future::join_all(patches).await;
        let patch_time = t.elapsed();
        assert!(results.iter().all(|(s, _)| *s == 200));
        let mut connected = 0;
        for (g, _) in &bodies {
            if rig
                .discord
                .wait_connected(*g, Duration::from_secs(60))
                .await
            {
                connected += 1;
            }
        }
        let all_connected = t.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let lat = poller.join().unwrap();
        let failures = lat.iter().filter(|(_, ok)| !ok).count();
        let mut ms: Vec<f64> = lat.iter().map(|(m, _)| *m).collect();
        let max = ms.iter().cloned().fold(0.0, f64::max);
        println!(
            "burst: {} voice PATCHes answered in {:.0} ms; {connected}/{} connected after {:.1} s (max {} handshakes at once)",
            a.burst,
            patch_time.as_secs_f64() * 1000.0,
            a.burst,
            all_connected.as_secs_f64(),
            rig.discord.counters().max_concurrent_handshakes
        );
        println!(
            "  /v4/stats during the burst: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {max:.1} ms, failures {failures}",
            ms.len(),
            percentile(&mut ms.clone(), 0.5),
            percentile(&mut ms, 0.99)
        );
    }
    let _ = ws.collect(Duration::from_millis(10)).await;
}

/// A minimal HTTP/1.1 GET with the password; returns the status code.
fn blocking_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        common::node::PASSWORD
    );
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
