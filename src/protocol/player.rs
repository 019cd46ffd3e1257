//! Player objects and the player PATCH body (spec §2.5, §3.9).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::filters::Filters;
use super::omissible::{Omissible, non_null};
use super::track::Track;

/// A player as `GET`/`PATCH` return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Player {
    pub guild_id: String,
    pub track: Option<Track>,
    pub volume: i32,
    pub paused: bool,
    pub state: PlayerState,
    pub voice: VoiceState,
    pub filters: Filters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerState {
    /// Epoch milliseconds when the state was taken.
    pub time: i64,
    /// Position of the audio actually sent, in ms; 0 without a track.
    pub position: i64,
    /// Whether the Discord voice gateway connection is open.
    pub connected: bool,
    /// Voice gateway heartbeat round trip in ms; -1 without a connection.
    pub ping: i64,
}

/// Discord voice credentials. In responses an unconnected player has empty strings and a
/// `null` channel id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceState {
    pub token: String,
    pub endpoint: String,
    pub session_id: String,
    #[serde(default)]
    pub channel_id: Option<String>,
}

impl VoiceState {
    /// All four fields given and non-blank (spec §3.9 rule 4).
    pub fn is_complete(&self) -> bool {
        !self.token.trim().is_empty()
            && !self.endpoint.trim().is_empty()
            && !self.session_id.trim().is_empty()
            && self
                .channel_id
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty())
    }
}

/// `track` inside a player PATCH.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePlayerTrack {
    #[serde(default)]
    pub encoded: Omissible<String>,
    #[serde(default, deserialize_with = "non_null")]
    pub identifier: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    pub user_data: Option<Map<String, Value>>,
}

/// The body of `PATCH /v4/sessions/{sessionId}/players/{guildId}`. Every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePlayer {
    #[serde(default, deserialize_with = "non_null")]
    pub track: Option<UpdatePlayerTrack>,
    /// Deprecated alias of `track.encoded`.
    #[serde(default)]
    pub encoded_track: Omissible<String>,
    /// Deprecated alias of `track.identifier`.
    #[serde(default, deserialize_with = "non_null")]
    pub identifier: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    pub position: Option<i64>,
    #[serde(default)]
    pub end_time: Omissible<i64>,
    #[serde(default, deserialize_with = "non_null")]
    pub volume: Option<i64>,
    #[serde(default, deserialize_with = "non_null")]
    pub paused: Option<bool>,
    #[serde(default, deserialize_with = "non_null")]
    pub filters: Option<Filters>,
    #[serde(default, deserialize_with = "non_null")]
    pub voice: Option<VoiceState>,
}

/// Body and response of `PATCH /v4/sessions/{sessionId}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct UpdateSession {
    #[serde(default, deserialize_with = "non_null")]
    pub resuming: Option<bool>,
    #[serde(default, deserialize_with = "non_null")]
    pub timeout: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    pub resuming: bool,
    pub timeout: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wavelinks_full_play_body_parses() {
        let body = r#"{"track":{"encoded":"QAAA","userData":{"a":1}},"position":0,"endTime":null,
            "volume":100,"paused":false,"filters":{"equalizer":[{"band":0,"gain":0.0},{"band":1,"gain":0.0},
            {"band":2,"gain":0.0},{"band":3,"gain":0.0},{"band":4,"gain":0.0},{"band":5,"gain":0.0},
            {"band":6,"gain":0.0},{"band":7,"gain":0.0},{"band":8,"gain":0.0},{"band":9,"gain":0.0},
            {"band":10,"gain":0.0},{"band":11,"gain":0.0},{"band":12,"gain":0.0},{"band":13,"gain":0.0},
            {"band":14,"gain":0.0}]}}"#;
        let u: UpdatePlayer = serde_json::from_str(body).unwrap();
        assert_eq!(u.end_time, Omissible::Null);
        assert_eq!(u.track.unwrap().encoded, Omissible::Present("QAAA".into()));
    }

    #[test]
    fn encoded_null_is_distinct_from_absent() {
        let u: UpdatePlayer = serde_json::from_str(r#"{"track":{"encoded":null}}"#).unwrap();
        assert_eq!(u.track.unwrap().encoded, Omissible::Null);
        let u: UpdatePlayer = serde_json::from_str(r#"{"track":{}}"#).unwrap();
        assert_eq!(u.track.unwrap().encoded, Omissible::Absent);
    }

    #[test]
    fn wrong_types_rejected() {
        assert!(serde_json::from_str::<UpdatePlayer>(r#"{"volume":"loud"}"#).is_err());
        assert!(serde_json::from_str::<UpdatePlayer>(r#"{"paused":null}"#).is_err());
        assert!(serde_json::from_str::<UpdatePlayer>(r#"{"position":1.5}"#).is_err());
    }
}
