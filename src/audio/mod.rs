//! The audio engine: decode → resample → filters → volume → Opus, and Opus passthrough.
//! Knows no sockets.
//!
//! - [`pipeline`]: one track's path from compressed bytes to Opus frames.
//! - [`engine`]: the fixed pool of worker threads that runs pipelines.
//! - [`player_audio`]: one player's shared audio state and the pacer-side frame source.
//! - [`frame_ring`]: the short encoded-frame buffer between workers and the pacer.

pub mod engine;
pub mod frame_ring;
pub mod pipeline;
pub mod player_audio;
