//! The audio engine: decode → resample → filters → volume → Opus, and Opus passthrough.
//! Knows no sockets.
