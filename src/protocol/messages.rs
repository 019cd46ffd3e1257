//! Messages the server sends on the client WebSocket (spec §4): `ready`, `playerUpdate`,
//! `stats` and `event`.

use serde::Serialize;

use super::load::Exception;
use super::player::PlayerState;
use super::stats::{FrameStats, Stats};
use super::track::Track;

/// One server → client WebSocket message. Built and serialized at once, never stored in bulk,
/// so the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum OutgoingMessage {
    #[serde(rename_all = "camelCase")]
    Ready {
        resumed: bool,
        session_id: String,
    },
    #[serde(rename_all = "camelCase")]
    PlayerUpdate {
        guild_id: String,
        state: PlayerState,
    },
    Stats {
        #[serde(flatten)]
        stats: Box<Stats>,
        /// Always present on the WebSocket, `null` when no player qualifies.
        #[serde(rename = "frameStats")]
        frame_stats: Option<FrameStats>,
    },
    Event(Event),
}

/// Why a track ended (spec §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackEndReason {
    Finished,
    LoadFailed,
    Stopped,
    Replaced,
    Cleanup,
}

impl TrackEndReason {
    /// Whether a client may start the next queued track (not serialized; clients derive it).
    pub fn may_start_next(self) -> bool {
        matches!(self, TrackEndReason::Finished | TrackEndReason::LoadFailed)
    }
}

/// The `event` op payloads, with the common `guildId`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename_all = "camelCase")]
    TrackStartEvent { guild_id: String, track: Track },
    #[serde(rename_all = "camelCase")]
    TrackEndEvent {
        guild_id: String,
        track: Track,
        reason: TrackEndReason,
    },
    #[serde(rename_all = "camelCase")]
    TrackExceptionEvent {
        guild_id: String,
        track: Track,
        exception: Exception,
    },
    #[serde(rename_all = "camelCase")]
    TrackStuckEvent {
        guild_id: String,
        track: Track,
        threshold_ms: i64,
    },
    #[serde(rename_all = "camelCase")]
    WebSocketClosedEvent {
        guild_id: String,
        code: u16,
        reason: String,
        by_remote: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::stats::{Cpu, Memory};

    #[test]
    fn ready_shape() {
        let m = OutgoingMessage::Ready {
            resumed: false,
            session_id: "abc".into(),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"op":"ready","resumed":false,"sessionId":"abc"}"#
        );
    }

    #[test]
    fn event_shape() {
        let m = OutgoingMessage::Event(Event::WebSocketClosedEvent {
            guild_id: "1".into(),
            code: 4006,
            reason: "x".into(),
            by_remote: true,
        });
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"op":"event","type":"WebSocketClosedEvent","guildId":"1","code":4006,"reason":"x","byRemote":true}"#
        );
    }

    #[test]
    fn stats_has_frame_stats_key() {
        let m = OutgoingMessage::Stats {
            stats: Box::new(Stats {
                players: 0,
                playing_players: 0,
                uptime: 1,
                memory: Memory {
                    free: 0,
                    used: 0,
                    allocated: 0,
                    reservable: 0,
                },
                cpu: Cpu {
                    cores: 2,
                    system_load: 0.0,
                    lavalink_load: 0.0,
                },
            }),
            frame_stats: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["op"], "stats");
        assert!(v.as_object().unwrap().contains_key("frameStats"));
        assert!(v["frameStats"].is_null());
        assert_eq!(v["cpu"]["cores"], 2);
    }
}
