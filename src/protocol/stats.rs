//! Node statistics (spec §2.7).

use serde::{Deserialize, Serialize};

/// `GET /v4/stats` body; the WebSocket `stats` op adds `frameStats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub players: i64,
    pub playing_players: i64,
    pub uptime: i64,
    pub memory: Memory,
    pub cpu: Cpu,
}

/// Bytes. We map the JVM heap figures onto the process: `used` = resident set size,
/// `allocated` = RSS as well (memory actually held), `reservable` = the limit we could grow to
/// (cgroup limit or physical memory), `free` = `allocated − used` (0 for us).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    pub free: i64,
    pub used: i64,
    pub allocated: i64,
    pub reservable: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    pub cores: i64,
    pub system_load: f64,
    pub lavalink_load: f64,
}

/// Per-minute frame accounting averaged over a session's playing players (spec §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameStats {
    pub sent: i64,
    pub nulled: i64,
    pub deficit: i64,
}
