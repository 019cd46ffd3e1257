//! Acoustic: a Lavalink v4 compatible audio node.
//!
//! The modules follow the path a frame takes: `api` (REST + client WebSocket) → `session` →
//! `player` → `sources` → `audio` (decode, resample, filters, Opus) → `voice` (Discord).

pub mod api;
pub mod audio;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod player;
pub mod protocol;
pub mod resolver;
pub mod routeplanner;
pub mod session;
pub mod sources;
pub mod system_stats;
pub mod track;
pub mod util;
pub mod voice;
