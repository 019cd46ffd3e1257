//! The node: everything a request handler reaches through the app state — configuration,
//! sessions, sources, the audio engine, voice, and the figures `/v4/stats` and `/v4/info` report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audio::engine::AudioEngine;
use crate::audio::pipeline::PipelineSettings;
use crate::config::Config;
use crate::player::PlayerContext;
use crate::protocol::info::{Git, Info, Plugin, Version};
use crate::protocol::stats::{Cpu, FrameStats, Memory, Stats};
use crate::resolver::{YtDlpSettings, YtDlpSlot};
use crate::routeplanner::RoutePlanner;
use crate::session::{Session, Sessions};
use crate::sources::{ProxySettings, SourceManagers, SourceSettings};
use crate::system_stats::{self, CpuLoad};
use crate::voice::{VoiceContext, VoiceSettings};

/// The version we report: Lavalink's protocol version clients gate on.
pub const LAVALINK_VERSION: &str = "4.2.2";

/// Shared node state.
pub struct Node {
    pub config: Config,
    pub sessions: Arc<Sessions>,
    pub players: Arc<PlayerContext>,
    pub started_at: Instant,
    pub cpu: Arc<CpuLoad>,
    /// `/v4/info` without its `sourceManagers` (filled in per request).
    pub info: Info,
    /// `None` when `ratelimit.ipBlocks` is empty (disabled).
    pub route_planner: Option<Arc<RoutePlanner>>,
}

impl Node {
    /// Builds the node from its configuration and starts its background threads.
    /// Fails (with a message naming the setting) when a setting cannot be used.
    pub fn new(config: Config) -> Result<Arc<Node>, String> {
        let route_planner = RoutePlanner::from_config(&config.ratelimit)
            .map_err(|e| format!("invalid value for `lavalink.server.ratelimit`: {e}"))?
            .map(Arc::new);
        let proxy = (!config.http_proxy.proxy_host.is_empty()).then(|| ProxySettings {
            host: config.http_proxy.proxy_host.clone(),
            port: config.http_proxy.proxy_port,
            user: Some(config.http_proxy.proxy_user.clone()).filter(|u| !u.is_empty()),
            password: Some(config.http_proxy.proxy_password.clone()).filter(|p| !p.is_empty()),
        });
        let ytdlp = ytdlp_slot(&config, route_planner.clone());
        let sources = Arc::new(SourceManagers::new(
            SourceSettings {
                http: config.sources.http,
                local: config.sources.local,
                local_directories: config.local_directories.clone(),
                connect_timeout: Duration::from_millis(config.connect_timeout_ms),
                read_timeout: Duration::from_millis(config.socket_timeout_ms),
                proxy,
                read_ahead_bytes: config.read_ahead_bytes,
                route_planner: route_planner.clone(),
            },
            ytdlp,
        ));
        sources.find_ytdlp_in_background();
        let engine = AudioEngine::new(
            config.audio_workers,
            PipelineSettings {
                opus_complexity: config.opus_encoding_quality,
                resampling: config.resampling_quality,
            },
        );
        let voice = VoiceContext::new(VoiceSettings {
            handshake_limit: config.voice_handshake_limit,
            ..VoiceSettings::default()
        });
        let players = Arc::new(PlayerContext {
            sources: sources.clone(),
            engine,
            voice,
            player_update_interval: Duration::from_secs(config.player_update_interval_secs),
            track_stuck_threshold_ms: config.track_stuck_threshold_ms,
            metrics: Arc::new(crate::metrics::Metrics::default()),
        });
        let cpu = Arc::new(CpuLoad::default());
        system_stats::spawn_sampler(cpu.clone(), Duration::from_secs(5));
        let info = build_info(&config);
        Ok(Arc::new(Node {
            config,
            sessions: Arc::new(Sessions::default()),
            players,
            started_at: Instant::now(),
            cpu,
            info,
            route_planner,
        }))
    }

    /// Shutdown: stop every player, waiting (about a second and a half at most) for their voice
    /// connections to close cleanly (silence frames, `speaking: 0`, close 1000), then close
    /// every client socket with 1001 (going away).
    pub async fn shutdown(&self) {
        let players: Vec<_> = self
            .sessions
            .all()
            .iter()
            .flat_map(|s| s.players())
            .collect();
        let stop_all = futures_util::future::join_all(players.iter().map(|p| p.destroy_and_wait()));
        let _ = tokio::time::timeout(Duration::from_millis(1400), stop_all).await;
        self.sessions.close_all(1001);
        // Give the socket writers a moment to send their close frames.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Node-wide stats (no frame stats).
    pub fn stats(&self) -> Stats {
        let mut players = 0;
        let mut playing = 0;
        for s in self.sessions.all() {
            for p in s.players() {
                players += 1;
                if p.is_playing() {
                    playing += 1;
                }
            }
        }
        let rss = system_stats::rss_bytes();
        let limit = system_stats::memory_limit_bytes();
        Stats {
            players,
            playing_players: playing,
            uptime: self.started_at.elapsed().as_millis() as i64,
            memory: Memory {
                free: 0,
                used: rss,
                allocated: rss,
                reservable: limit,
            },
            cpu: Cpu {
                cores: system_stats::cores() as i64,
                system_load: self.cpu.system(),
                lavalink_load: self.cpu.process(),
            },
        }
    }

    /// Frame stats over `session`'s players that played through the previous full minute.
    pub fn frame_stats(&self, session: &Session) -> Option<FrameStats> {
        let minutes: Vec<(u64, u64)> = session
            .players()
            .iter()
            .filter_map(|p| p.last_full_minute())
            .collect();
        let n = minutes.len() as i64;
        if n == 0 {
            return None;
        }
        let sent: i64 = minutes.iter().map(|m| m.0 as i64).sum();
        let nulled: i64 = minutes.iter().map(|m| m.1 as i64).sum();
        Some(FrameStats {
            sent: sent / n,
            nulled: nulled / n,
            deficit: (n * 3000 - (sent + nulled)) / n,
        })
    }

    /// Rolls every player's frame accounting at each wall-clock minute.
    pub fn spawn_minute_roller(self: &Arc<Self>) {
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let now_ms = crate::util::now_millis();
                let to_next = 60_000 - now_ms.rem_euclid(60_000);
                tokio::time::sleep(Duration::from_millis(to_next as u64)).await;
                let Some(node) = node.upgrade() else { break };
                for s in node.sessions.all() {
                    for p in s.players() {
                        p.roll_frame_minute();
                    }
                }
            }
        });
    }
}

/// What looks for yt-dlp and starts its warm helper: in the background (a second or two, see
/// [`YtDlpSlot`]), on a multi-threaded runtime only, where the helper's I/O tasks live.
fn ytdlp_slot(config: &Config, route_planner: Option<Arc<RoutePlanner>>) -> YtDlpSlot {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if !multi_thread {
        tracing::warn!("yt-dlp sources are off: the node is not on a multi-threaded runtime");
        return YtDlpSlot::from(None);
    }
    YtDlpSlot::new(YtDlpSettings {
        route_planner,
        ..YtDlpSettings::from_config(config)
    })
}

fn build_info(config: &Config) -> Info {
    let mut parts = LAVALINK_VERSION
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor, patch) = (
        parts.next().unwrap_or(4),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    Info {
        version: Version {
            semver: LAVALINK_VERSION.to_string(),
            major,
            minor,
            patch,
            pre_release: None,
            build: None,
        },
        build_time: env!("ACOUSTIC_BUILD_TIME").parse().unwrap_or(0),
        git: Git {
            branch: env!("ACOUSTIC_GIT_BRANCH").to_string(),
            commit: env!("ACOUSTIC_GIT_COMMIT").to_string(),
            commit_time: env!("ACOUSTIC_GIT_COMMIT_TIME").parse().unwrap_or(0),
        },
        jvm: format!(
            "Acoustic {} ({})",
            env!("CARGO_PKG_VERSION"),
            env!("ACOUSTIC_RUSTC_VERSION")
        ),
        lavaplayer: format!(
            "acoustic-audio {} (symphonia 0.6, libopus)",
            env!("CARGO_PKG_VERSION")
        ),
        // Filled in per request: the yt-dlp sources are known once yt-dlp has been looked for.
        source_managers: Vec::new(),
        filters: crate::protocol::filters::BUILTIN_FILTERS
            .iter()
            .filter(|f| config.filter_enabled(f))
            .map(|f| f.to_string())
            .collect(),
        plugins: Vec::<Plugin>::new(),
    }
}
