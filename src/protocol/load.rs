//! `/v4/loadtracks` results and the exception object (spec §2.3, §2.4, §3.4).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::track::Track;

/// How serious a failure is, in Lavalink's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Expected: the media is unavailable, a URL is wrong.
    Common,
    /// Probably an external cause: an upstream answered in an unexpected way.
    Suspicious,
    /// Internal or unknown.
    Fault,
}

/// Lavalink's exception object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exception {
    pub message: Option<String>,
    pub severity: Severity,
    pub cause: String,
    pub cause_stack_trace: String,
}

impl Exception {
    /// An exception whose cause is described by `cause_type` (a Java-like exception class name,
    /// which clients sometimes print) and `detail`.
    pub fn new(
        message: impl Into<String>,
        severity: Severity,
        cause_type: &str,
        detail: &str,
    ) -> Self {
        let message = message.into();
        let cause = if detail.is_empty() {
            cause_type.to_string()
        } else {
            format!("{cause_type}: {detail}")
        };
        Exception {
            message: Some(message),
            severity,
            cause_stack_trace: format!("{cause}\n\tat acoustic\n"),
            cause,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaylistInfo {
    pub name: String,
    pub selected_track: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Playlist {
    pub info: PlaylistInfo,
    pub plugin_info: Map<String, Value>,
    pub tracks: Vec<Track>,
}

/// `{ "loadType": …, "data": … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "loadType", content = "data", rename_all = "lowercase")]
pub enum LoadResult {
    Track(Track),
    Playlist(Playlist),
    Search(Vec<Track>),
    /// Serialized with `"data": null`.
    Empty(()),
    Error(Exception),
}

impl LoadResult {
    pub fn empty() -> Self {
        LoadResult::Empty(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_has_null_data() {
        assert_eq!(
            serde_json::to_string(&LoadResult::empty()).unwrap(),
            r#"{"loadType":"empty","data":null}"#
        );
    }

    #[test]
    fn error_shape() {
        let e = LoadResult::Error(Exception::new(
            "That URL is not playable.",
            Severity::Common,
            "java.io.IOException",
            "x",
        ));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["loadType"], "error");
        assert_eq!(v["data"]["severity"], "common");
        assert_eq!(v["data"]["cause"], "java.io.IOException: x");
        assert!(v["data"]["causeStackTrace"].is_string());
    }
}
