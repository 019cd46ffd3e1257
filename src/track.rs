//! Track data ↔ Lavalink track objects: encoding blobs for clients and decoding theirs.

use serde_json::{Map, Value};

use crate::protocol::track::Track;
use crate::protocol::track_codec::{self, TrackDecodeError};
use crate::sources::{SourceManagers, TrackData};

/// A client-facing track for `data`, with a fresh v3 blob embedding `position_ms`.
pub fn to_track(data: &TrackData, position_ms: i64, user_data: Map<String, Value>) -> Track {
    let mut info = data.info.clone();
    info.position = position_ms;
    Track {
        encoded: track_codec::encode_track(&info, &data.details),
        info,
        plugin_info: Map::new(),
        user_data,
    }
}

/// Decodes a client's blob into playable track data (the source must be known here).
pub fn decode(sources: &SourceManagers, encoded: &str) -> Result<TrackData, TrackDecodeError> {
    let decoded = track_codec::decode_track(encoded, |name| sources.details_layout(name))?;
    Ok(TrackData {
        info: decoded.info,
        details: decoded.details,
    })
}

/// The `/decodetrack(s)` answer: the input string echoed, info as stored in the blob.
pub fn decode_for_client(
    sources: &SourceManagers,
    encoded: &str,
) -> Result<Track, TrackDecodeError> {
    let data = decode(sources, encoded)?;
    Ok(Track {
        encoded: encoded.to_string(),
        info: data.info,
        plugin_info: Map::new(),
        user_data: Map::new(),
    })
}
