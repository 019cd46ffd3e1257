//! The server's event log: one entry per thing a test may want to check happened (connects,
//! identifies, resumes, closes with their codes, DAVE messages both ways).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Who ended a gateway connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closer {
    /// The server sent a close frame.
    Server,
    /// The client sent a close frame.
    Client,
    /// The server dropped the TCP connection without a close frame (scripted).
    ServerDropped,
    /// The TCP connection ended without a close frame from the client.
    ClientDropped,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    Connected {
        conn: u64,
        version: u8,
        tls: bool,
    },
    Identified {
        conn: u64,
        guild_id: u64,
        user_id: u64,
        max_dave_protocol_version: Option<u64>,
    },
    IdentifyRejected {
        conn: u64,
        guild_id: Option<u64>,
        code: u16,
        reason: String,
    },
    Ready {
        conn: u64,
        guild_id: u64,
        ssrc: u32,
    },
    IpDiscovery {
        ssrc: u32,
        from: String,
        known_ssrc: bool,
    },
    SelectProtocol {
        conn: u64,
        guild_id: u64,
        mode: String,
        address: String,
        port: u64,
    },
    SessionDescription {
        conn: u64,
        guild_id: u64,
        mode: String,
        dave_protocol_version: u16,
    },
    Heartbeat {
        conn: u64,
        guild_id: Option<u64>,
        seq_ack: Option<i64>,
    },
    Speaking {
        conn: u64,
        guild_id: u64,
        speaking: u64,
        ssrc: u32,
    },
    Resumed {
        conn: u64,
        guild_id: u64,
        seq_ack: Option<i64>,
        replayed: usize,
    },
    ResumeRejected {
        conn: u64,
        guild_id: Option<u64>,
        reason: String,
    },
    Closed {
        conn: u64,
        guild_id: Option<u64>,
        code: Option<u16>,
        reason: String,
        by: Closer,
    },
    /// A DAVE message the server sent to the bot.
    DaveSent {
        guild_id: u64,
        op: u8,
        transition_id: Option<u16>,
    },
    /// A DAVE message the bot sent.
    DaveReceived {
        guild_id: u64,
        op: u8,
        transition_id: Option<u16>,
        len: usize,
    },
    /// A transition was executed (op 22 sent).
    DaveTransitionExecuted {
        guild_id: u64,
        transition_id: u16,
        protocol_version: u16,
    },
    /// Something in the DAVE flow failed (bad key package, commit that a listener rejected...).
    DaveError {
        guild_id: u64,
        detail: String,
    },
    /// A client message the server did not accept (the connection was closed for it).
    ProtocolError {
        conn: u64,
        guild_id: Option<u64>,
        detail: String,
    },
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Time since the server started.
    pub at: Duration,
    #[serde(flatten)]
    pub kind: EventKind,
}
