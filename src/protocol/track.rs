//! Track objects as they appear in JSON (spec §2.1, §2.2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `length` of a stream or of media whose duration is unknown.
pub const UNKNOWN_LENGTH: i64 = i64::MAX;

/// The track metadata every client reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    pub identifier: String,
    pub is_seekable: bool,
    pub author: String,
    pub length: i64,
    pub is_stream: bool,
    pub position: i64,
    pub title: String,
    pub uri: Option<String>,
    pub artwork_url: Option<String>,
    pub isrc: Option<String>,
    pub source_name: String,
}

/// A track as sent to clients: the encoded blob plus its decoded info.
/// `pluginInfo` and `userData` are always present (`{}` when empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Track {
    pub encoded: String,
    pub info: TrackInfo,
    pub plugin_info: Map<String, Value>,
    pub user_data: Map<String, Value>,
}
