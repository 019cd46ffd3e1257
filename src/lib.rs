//! Acoustic: a Lavalink v4 compatible audio node.
//!
//! The modules follow the path a frame takes: `api` (REST + client WebSocket) → `session` →
//! `player` → `sources` → `audio` (decode, resample, filters, Opus) → `voice` (Discord).

pub mod audio;
pub mod protocol;
pub mod sources;
pub mod voice;
