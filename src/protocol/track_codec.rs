//! lavaplayer's binary track format (spec §6): decode versions 1–3, encode version 3.
//! (Interface stub: being implemented.)

use super::track::TrackInfo;

/// How a source lays out its source-specific detail bytes (field 10 of the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailsLayout {
    /// No detail bytes (youtube, soundcloud, bandcamp, twitch, vimeo, niconico).
    Empty,
    /// One modified-UTF-8 string: the probe info of `http`/`local` tracks.
    ProbeInfo,
}

/// Source-specific details as stored in the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDetails {
    None,
    /// e.g. `mp3`, or `m3u|hls-outer`.
    ProbeInfo(String),
}

/// A decoded blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedTrack {
    /// `is_seekable` is computed as `!is_stream`; `position` is the stored position.
    pub info: TrackInfo,
    pub details: SourceDetails,
    /// The message version that was read (1, 2 or 3).
    pub version: u8,
}

/// Why a blob could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackDecodeError {
    #[error("invalid base64")]
    Base64,
    #[error("truncated track data")]
    Truncated,
    #[error("invalid modified UTF-8 string")]
    InvalidString,
    #[error("unknown source {0}")]
    UnknownSource(String),
}

/// Decodes a base64 track. `layout` tells, for a `sourceName`, how its details are laid out;
/// `None` means the source is unknown (decoding fails).
pub fn decode_track(
    _encoded: &str,
    _layout: impl Fn(&str) -> Option<DetailsLayout>,
) -> Result<DecodedTrack, TrackDecodeError> {
    todo!("track codec")
}

/// Encodes a track as a version-3 message (flags = 1), base64 with padding.
pub fn encode_track(_info: &TrackInfo, _details: &SourceDetails) -> String {
    todo!("track codec")
}
