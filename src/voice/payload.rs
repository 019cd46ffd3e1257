//! The voice gateway's messages, v8: typed JSON payloads, the binary DAVE frames, and parsing
//! of what the server sends.
//!
//! Server→client binary frames are `seq u16 BE | opcode u8 | payload`; client→server binary
//! frames have no sequence and start with the opcode. JSON messages are `{op, d}` and, from
//! the server, may carry a top-level `seq` (v8 buffered resume).

use bytes::Bytes;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// Voice gateway opcodes.
pub mod op {
    pub const IDENTIFY: u8 = 0;
    pub const SELECT_PROTOCOL: u8 = 1;
    pub const READY: u8 = 2;
    pub const HEARTBEAT: u8 = 3;
    pub const SESSION_DESCRIPTION: u8 = 4;
    pub const SPEAKING: u8 = 5;
    pub const HEARTBEAT_ACK: u8 = 6;
    pub const RESUME: u8 = 7;
    pub const HELLO: u8 = 8;
    pub const RESUMED: u8 = 9;
    pub const CLIENTS_CONNECT: u8 = 11;
    pub const CLIENT_DISCONNECT: u8 = 13;
    pub const DAVE_PREPARE_TRANSITION: u8 = 21;
    pub const DAVE_EXECUTE_TRANSITION: u8 = 22;
    pub const DAVE_TRANSITION_READY: u8 = 23;
    pub const DAVE_PREPARE_EPOCH: u8 = 24;
    pub const DAVE_MLS_EXTERNAL_SENDER: u8 = 25;
    pub const DAVE_MLS_KEY_PACKAGE: u8 = 26;
    pub const DAVE_MLS_PROPOSALS: u8 = 27;
    pub const DAVE_MLS_COMMIT_WELCOME: u8 = 28;
    pub const DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION: u8 = 29;
    pub const DAVE_MLS_WELCOME: u8 = 30;
    pub const DAVE_MLS_INVALID_COMMIT_WELCOME: u8 = 31;
}

/// A Discord snowflake that may arrive as a JSON string or number; sent as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snowflake(pub u64);

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Snowflake(n)),
            Raw::S(s) => s
                .parse()
                .map(Snowflake)
                .map_err(|_| de::Error::custom(format!("invalid snowflake {s:?}"))),
        }
    }
}

impl Serialize for Snowflake {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

// ---- client → server (JSON) -------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Envelope<T> {
    op: u8,
    d: T,
}

#[derive(Debug, Serialize)]
pub struct Identify<'a> {
    pub server_id: Snowflake,
    pub user_id: Snowflake,
    pub session_id: &'a str,
    pub token: &'a str,
    pub max_dave_protocol_version: u16,
}

#[derive(Debug, Serialize)]
pub struct SelectProtocolData<'a> {
    pub address: &'a str,
    pub port: u16,
    pub mode: &'a str,
}

#[derive(Debug, Serialize)]
pub struct SelectProtocol<'a> {
    pub protocol: &'static str,
    pub data: SelectProtocolData<'a>,
}

#[derive(Debug, Serialize)]
pub struct Heartbeat {
    pub t: u64,
    /// The last sequence number seen from the server, -1 when none yet.
    pub seq_ack: i64,
}

#[derive(Debug, Serialize)]
pub struct Speaking {
    pub speaking: u8,
    pub delay: u32,
    pub ssrc: u32,
}

#[derive(Debug, Serialize)]
pub struct Resume<'a> {
    pub server_id: Snowflake,
    pub session_id: &'a str,
    pub token: &'a str,
    pub seq_ack: i64,
}

#[derive(Debug, Serialize)]
pub struct TransitionId {
    pub transition_id: u16,
}

/// Serializes `{op, d}`.
pub fn to_json<T: Serialize>(op: u8, d: T) -> String {
    serde_json::to_string(&Envelope { op, d }).expect("voice payloads always serialize")
}

/// A client→server binary frame: the opcode, then the parts back to back.
pub fn binary_frame(op: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut v = Vec::with_capacity(len);
    v.push(op);
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

// ---- server → client ---------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hello {
    pub heartbeat_interval: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ready {
    pub ssrc: u32,
    pub ip: String,
    pub port: u16,
    #[serde(default)]
    pub modes: Vec<String>,
}

#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct SessionDescription {
    pub mode: String,
    pub secret_key: Vec<u8>,
    #[serde(default)]
    pub dave_protocol_version: u16,
}

impl std::fmt::Debug for SessionDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDescription")
            .field("mode", &self.mode)
            .field("secret_key", &"<redacted>")
            .field("dave_protocol_version", &self.dave_protocol_version)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HeartbeatAck {
    pub t: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClientsConnect {
    pub user_ids: Vec<Snowflake>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClientDisconnect {
    pub user_id: Snowflake,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct PrepareTransition {
    pub protocol_version: u16,
    pub transition_id: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ExecuteTransition {
    pub transition_id: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct PrepareEpoch {
    pub protocol_version: u16,
    pub epoch: u64,
}

/// One message from the server, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    Hello(Hello),
    Ready(Ready),
    SessionDescription(SessionDescription),
    HeartbeatAck(HeartbeatAck),
    Resumed,
    ClientsConnect(ClientsConnect),
    ClientDisconnect(ClientDisconnect),
    PrepareTransition(PrepareTransition),
    ExecuteTransition(ExecuteTransition),
    PrepareEpoch(PrepareEpoch),
    /// Op 25: the TLS-serialized external sender.
    ExternalSender(Bytes),
    /// Op 27: operation type (0 append, 1 revoke) and the length-prefixed proposals vector.
    Proposals {
        operation: u8,
        proposals: Bytes,
    },
    /// Op 29.
    AnnounceCommit {
        transition_id: u16,
        commit: Bytes,
    },
    /// Op 30.
    Welcome {
        transition_id: u16,
        welcome: Bytes,
    },
    /// Anything else (speaking of other users, undocumented ops): ignored.
    Other(u8),
}

/// A decoded server message with its v8 sequence number, if it carried one.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMessage {
    pub seq: Option<i64>,
    pub event: ServerEvent,
}

/// Why a server message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("invalid JSON message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("binary frame of {0} bytes is too short")]
    ShortBinary(usize),
    #[error("binary opcode {0} payload is too short")]
    ShortPayload(u8),
}

#[derive(Deserialize)]
struct RawMessage {
    op: u8,
    #[serde(default)]
    d: serde_json::Value,
    #[serde(default)]
    seq: Option<i64>,
}

/// Decodes a text (JSON) message.
pub fn parse_text(text: &str) -> Result<ServerMessage, PayloadError> {
    let raw: RawMessage = serde_json::from_str(text)?;
    let d = raw.d;
    let event = match raw.op {
        op::HELLO => ServerEvent::Hello(serde_json::from_value(d)?),
        op::READY => ServerEvent::Ready(serde_json::from_value(d)?),
        op::SESSION_DESCRIPTION => ServerEvent::SessionDescription(serde_json::from_value(d)?),
        op::HEARTBEAT_ACK => ServerEvent::HeartbeatAck(serde_json::from_value(d)?),
        op::RESUMED => ServerEvent::Resumed,
        op::CLIENTS_CONNECT => ServerEvent::ClientsConnect(serde_json::from_value(d)?),
        op::CLIENT_DISCONNECT => ServerEvent::ClientDisconnect(serde_json::from_value(d)?),
        op::DAVE_PREPARE_TRANSITION => ServerEvent::PrepareTransition(serde_json::from_value(d)?),
        op::DAVE_EXECUTE_TRANSITION => ServerEvent::ExecuteTransition(serde_json::from_value(d)?),
        op::DAVE_PREPARE_EPOCH => ServerEvent::PrepareEpoch(serde_json::from_value(d)?),
        other => ServerEvent::Other(other),
    };
    Ok(ServerMessage {
        seq: raw.seq,
        event,
    })
}

/// Decodes a server→client binary frame (`seq u16 | op u8 | payload`).
pub fn parse_binary(frame: &Bytes) -> Result<ServerMessage, PayloadError> {
    if frame.len() < 3 {
        return Err(PayloadError::ShortBinary(frame.len()));
    }
    let seq = i64::from(u16::from_be_bytes([frame[0], frame[1]]));
    let opcode = frame[2];
    let payload = frame.slice(3..);
    let with_transition = |payload: &Bytes| -> Result<(u16, Bytes), PayloadError> {
        if payload.len() < 2 {
            return Err(PayloadError::ShortPayload(opcode));
        }
        Ok((
            u16::from_be_bytes([payload[0], payload[1]]),
            payload.slice(2..),
        ))
    };
    let event = match opcode {
        op::DAVE_MLS_EXTERNAL_SENDER => ServerEvent::ExternalSender(payload),
        op::DAVE_MLS_PROPOSALS => {
            if payload.is_empty() {
                return Err(PayloadError::ShortPayload(opcode));
            }
            ServerEvent::Proposals {
                operation: payload[0],
                proposals: payload.slice(1..),
            }
        }
        op::DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION => {
            let (transition_id, commit) = with_transition(&payload)?;
            ServerEvent::AnnounceCommit {
                transition_id,
                commit,
            }
        }
        op::DAVE_MLS_WELCOME => {
            let (transition_id, welcome) = with_transition(&payload)?;
            ServerEvent::Welcome {
                transition_id,
                welcome,
            }
        }
        other => ServerEvent::Other(other),
    };
    Ok(ServerMessage {
        seq: Some(seq),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identify_sends_ids_as_strings_and_dave_version() {
        let s = to_json(
            op::IDENTIFY,
            Identify {
                server_id: Snowflake(41771983423143937),
                user_id: Snowflake(104694319306248192),
                session_id: "my_session_id",
                token: "my_token",
                max_dave_protocol_version: 1,
            },
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v,
            json!({"op": 0, "d": {"server_id": "41771983423143937", "user_id": "104694319306248192",
                "session_id": "my_session_id", "token": "my_token", "max_dave_protocol_version": 1}})
        );
    }

    #[test]
    fn heartbeat_and_resume_carry_seq_ack() {
        let v: serde_json::Value = serde_json::from_str(&to_json(
            op::HEARTBEAT,
            Heartbeat {
                t: 1501184119561,
                seq_ack: 10,
            },
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"op": 3, "d": {"t": 1501184119561u64, "seq_ack": 10}})
        );
        let v: serde_json::Value = serde_json::from_str(&to_json(
            op::RESUME,
            Resume {
                server_id: Snowflake(1),
                session_id: "s",
                token: "t",
                seq_ack: -1,
            },
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"op": 7, "d": {"server_id": "1", "session_id": "s", "token": "t", "seq_ack": -1}})
        );
    }

    #[test]
    fn parses_server_json_with_and_without_seq() {
        let m = parse_text(r#"{"op":8,"d":{"heartbeat_interval":13750.0}}"#).unwrap();
        assert_eq!(m.seq, None);
        assert_eq!(
            m.event,
            ServerEvent::Hello(Hello {
                heartbeat_interval: 13750.0
            })
        );
        let m = parse_text(
            r#"{"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":1234,"modes":["aead_aes256_gcm_rtpsize"],"heartbeat_interval":1}}"#,
        )
        .unwrap();
        assert!(matches!(
            m.event,
            ServerEvent::Ready(Ready {
                ssrc: 1,
                port: 1234,
                ..
            })
        ));
        let m = parse_text(r#"{"op":11,"seq":7,"d":{"user_ids":["5","6"]}}"#).unwrap();
        assert_eq!(m.seq, Some(7));
        assert_eq!(
            m.event,
            ServerEvent::ClientsConnect(ClientsConnect {
                user_ids: vec![Snowflake(5), Snowflake(6)]
            })
        );
        let m = parse_text(r#"{"op":9,"d":null}"#).unwrap();
        assert_eq!(m.event, ServerEvent::Resumed);
        let m = parse_text(r#"{"op":18,"d":{"flags":2}}"#).unwrap();
        assert_eq!(m.event, ServerEvent::Other(18));
        let m = parse_text(
            r#"{"op":4,"seq":2,"d":{"mode":"aead_aes256_gcm_rtpsize","secret_key":[1,2,3],"dave_protocol_version":1}}"#,
        )
        .unwrap();
        let ServerEvent::SessionDescription(sd) = m.event else {
            panic!()
        };
        assert_eq!(
            (sd.secret_key.as_slice(), sd.dave_protocol_version),
            (&[1u8, 2, 3][..], 1)
        );
        assert!(!format!("{sd:?}").contains("[1, 2, 3]"));
    }

    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        assert!(parse_text("not json").is_err());
        assert!(parse_text(r#"{"op":2,"d":{"ssrc":"x"}}"#).is_err());
        assert!(parse_text(r#"{"op":11,"d":{"user_ids":["abc"]}}"#).is_err());
    }

    #[test]
    fn binary_frames_carry_seq_then_opcode() {
        let m = parse_binary(&Bytes::from_static(&[
            0x01, 0x02, 29, 0x00, 0x05, 0xAA, 0xBB,
        ]))
        .unwrap();
        assert_eq!(m.seq, Some(0x0102));
        assert_eq!(
            m.event,
            ServerEvent::AnnounceCommit {
                transition_id: 5,
                commit: Bytes::from_static(&[0xAA, 0xBB])
            }
        );
        let m = parse_binary(&Bytes::from_static(&[0xFF, 0xFF, 27, 1, 9, 9])).unwrap();
        assert_eq!(m.seq, Some(65535));
        assert_eq!(
            m.event,
            ServerEvent::Proposals {
                operation: 1,
                proposals: Bytes::from_static(&[9, 9])
            }
        );
        let m = parse_binary(&Bytes::from_static(&[0, 3, 25, 7])).unwrap();
        assert_eq!(
            m.event,
            ServerEvent::ExternalSender(Bytes::from_static(&[7]))
        );
        let m = parse_binary(&Bytes::from_static(&[0, 3, 30, 0, 0])).unwrap();
        assert_eq!(
            m.event,
            ServerEvent::Welcome {
                transition_id: 0,
                welcome: Bytes::new()
            }
        );
        assert!(matches!(
            parse_binary(&Bytes::from_static(&[0, 1])),
            Err(PayloadError::ShortBinary(2))
        ));
        assert!(matches!(
            parse_binary(&Bytes::from_static(&[0, 1, 29, 0])),
            Err(PayloadError::ShortPayload(29))
        ));
        assert!(matches!(
            parse_binary(&Bytes::from_static(&[0, 1, 27])),
            Err(PayloadError::ShortPayload(27))
        ));
    }

    #[test]
    fn client_binary_frames_have_no_seq() {
        assert_eq!(
            binary_frame(op::DAVE_MLS_KEY_PACKAGE, &[&[1, 2]]),
            vec![26, 1, 2]
        );
        assert_eq!(
            binary_frame(op::DAVE_MLS_COMMIT_WELCOME, &[&[1], &[2, 3]]),
            vec![28, 1, 2, 3]
        );
    }
}
