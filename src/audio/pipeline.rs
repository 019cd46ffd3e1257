//! One track's audio path: demux → decode → resample to 48 kHz stereo → filters → volume →
//! Opus, or Opus passthrough. (Interface stub; implementation in progress.)

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::ResamplingQuality;
use crate::protocol::filters::Filters;
use crate::sources::OpenedMedia;
use crate::voice::MAX_OPUS_PACKET;

/// Node-wide encoder/resampler settings.
#[derive(Debug, Clone, Copy)]
pub struct PipelineSettings {
    /// Opus complexity 0..=10 (`opusEncodingQuality`).
    pub opus_complexity: u8,
    pub resampling: ResamplingQuality,
}

/// The player's controls as the pipeline reads them for each frame.
pub struct Controls<'a> {
    /// Player volume 0..=1000 (100 = unity).
    pub volume: i32,
    /// Bumped whenever `filters` changes.
    pub filters_version: u64,
    pub filters: &'a ArcSwap<Filters>,
    /// End the track when the position reaches this (ms); `i64::MAX` = none.
    pub end_time_ms: i64,
}

/// One produced 20 ms frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedFrame {
    /// Bytes of the Opus packet written to the output buffer.
    pub len: usize,
    /// Source position in ms at the end of this frame.
    pub end_position_ms: i64,
}

/// Why audio could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Decode(String),
    #[error("{0}")]
    Io(String),
}

/// A track being played.
pub struct TrackPipeline {
    _private: (),
}

impl TrackPipeline {
    /// Probes the media, builds the decoder and seeks to `start_position_ms`. Blocking (may
    /// read from the network): call off the async threads and off the worker pool.
    /// `notify` is called whenever the source gets new bytes (re-schedules the player).
    pub fn open(
        _media: OpenedMedia,
        _settings: &PipelineSettings,
        _start_position_ms: i64,
        _notify: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<TrackPipeline, AudioError> {
        Err(AudioError::Unsupported(
            "audio pipeline not implemented yet".into(),
        ))
    }

    /// Seeks to `position_ms`; returns the position actually reached. Blocking.
    pub fn seek(&mut self, position_ms: i64) -> Result<i64, AudioError> {
        Ok(position_ms)
    }

    /// Whether `next_frame` can run without blocking on the source.
    pub fn is_ready(&self) -> bool {
        true
    }

    /// Produces the next 20 ms frame into `out`; `Ok(None)` at the end of the track.
    pub fn next_frame(
        &mut self,
        _controls: &Controls,
        _out: &mut [u8; MAX_OPUS_PACKET],
    ) -> Result<Option<ProducedFrame>, AudioError> {
        Ok(None)
    }
}
