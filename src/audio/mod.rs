//! The audio engine: decode → resample → filters → volume → Opus, and Opus passthrough.
//! Knows no sockets.

pub mod filters;
pub mod volume;
