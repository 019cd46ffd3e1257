//! The audio engine: decode → resample → filters → volume → Opus, and Opus passthrough.
//! Knows no sockets.
//!
//! - [`pipeline`]: one track's path from compressed bytes to Opus frames, built from
//!   [`decode`] (symphonia demux/decode), [`downmix`] (to stereo), [`resample`] (to 48 kHz, with [`polyphase`] for
//!   `resamplingQuality: LOW`),
//!   [`filters`] (Lavalink's ten filters), [`volume`] (the player volume), [`encode`] (Opus)
//!   and [`passthrough`] (Opus sources sent as they are), with [`fifo`] between the stages.
//! - [`engine`]: the fixed pool of worker threads that runs pipelines.
//! - [`player_audio`]: one player's shared audio state and the pacer-side frame source.
//! - [`frame_ring`]: the short encoded-frame buffer between workers and the pacer.

mod decode;
mod downmix;
mod encode;
pub mod engine;
mod fifo;
pub mod filters;
pub mod frame_ring;
mod passthrough;
pub mod pipeline;
pub mod player_audio;
mod polyphase;
mod resample;
pub mod volume;

/// True when the CPU has AVX and FMA, what the hand-vectorised kernels (the resamplers, the
/// equalizer, the WSOLA search) are compiled for. Checked at run time; std caches the answer,
/// so asking once per call of a kernel costs next to nothing.
#[cfg(target_arch = "x86_64")]
fn has_avx_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("fma")
}
