//! Discord voice: gateway v8, UDP, transport encryption, DAVE and the 20 ms pacer.
//!
//! This module knows nothing of Lavalink JSON. The player side hands the pacer a
//! [`FrameSource`] per player ([`VoiceContext::register`]); a [`VoiceConnection`] fills that
//! player's [`VoiceSlot`] with a ready UDP transport; every 20 ms the pacer pulls one Opus
//! frame from each player whose slot holds a transport and sends it.
//!
//! Files, one idea each:
//! - `context`: what all connections share (pacer, handshake gate, TLS config, counters);
//! - `connection`: one connection's handle and task (retry policy applied, teardown);
//! - `gateway`: one WebSocket from open to close (handshake, heartbeats, speaking, DAVE ops);
//! - `payload`: the gateway's messages; `policy`: close codes → resume / reconnect / report;
//! - `discovery`: UDP IP discovery; `rtp`: RTP header; `crypto`: transport AEAD;
//! - `dave`: the DAVE flow and the cell the pacer encrypts through;
//! - `transport`: the ready transport and the per-player slot;
//! - `pacer`: the 20 ms sending thread; `metrics`: counters.

mod connection;
mod context;
pub mod crypto;
mod dave;
pub mod discovery;
mod gateway;
mod metrics;
mod pacer;
pub mod payload;
pub mod policy;
pub mod rtp;
mod transport;

pub use connection::VoiceConnection;
pub use context::{PacerKey, VoiceContext, VoiceSettings};
pub use metrics::{ConnectionsByState, PacerSnapshot, VoiceMetricsSnapshot};
pub use pacer::{FRAME_PERIOD, SILENCE_FRAMES};
pub use transport::{FrameCounts, VoiceSlot};

/// Largest Opus payload we ever send in one packet.
pub const MAX_OPUS_PACKET: usize = 1275 * 3;

/// What a player answers when the pacer asks it for the next 20 ms of audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameOutcome {
    /// `out[..n]` holds one Opus packet to send.
    Frame(usize),
    /// The player has a track but no frame ready (counted as `nulled`).
    Missing,
    /// Nothing is playing (idle, paused, stopped): send nothing, stop speaking after silence.
    Idle,
}

/// The player side of the frame hand-off. Called by the pacer thread once per 20 ms slot,
/// only while the player's voice slot holds a ready transport.
///
/// Implementations must not allocate, block, or take a lock shared with request handlers.
pub trait FrameSource: Send + 'static {
    fn next_frame(&mut self, out: &mut [u8; MAX_OPUS_PACKET]) -> FrameOutcome;
}

/// Identity and credentials of one voice connection, from the bot's voice state/server updates.
#[derive(Clone, PartialEq, Eq)]
pub struct VoiceServerInfo {
    pub guild_id: u64,
    pub user_id: u64,
    pub channel_id: u64,
    pub session_id: String,
    pub token: String,
    /// `host[:port]`, no scheme.
    pub endpoint: String,
}

/// Debug output never shows the token.
impl std::fmt::Debug for VoiceServerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceServerInfo")
            .field("guild_id", &self.guild_id)
            .field("user_id", &self.user_id)
            .field("channel_id", &self.channel_id)
            .field("session_id", &self.session_id)
            .field("token", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// What a connection reports to its player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceEvent {
    /// The gateway handshake completed and UDP is ready (or ready again after a resume).
    Ready,
    /// The gateway closed and will not be retried (or retries ran out).
    Closed {
        code: u16,
        reason: String,
        by_remote: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_the_token() {
        let info = VoiceServerInfo {
            guild_id: 1,
            user_id: 2,
            channel_id: 3,
            session_id: "sess".into(),
            token: "very-secret-token".into(),
            endpoint: "voice.example:443".into(),
        };
        let s = format!("{info:?}");
        assert!(!s.contains("very-secret-token"));
        assert!(s.contains("sess") && s.contains("voice.example"));
    }
}
