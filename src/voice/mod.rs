//! Discord voice: gateway v8, UDP, transport encryption, DAVE and the 20 ms pacer.
//!
//! This module knows nothing of Lavalink JSON. The player side hands the pacer a
//! [`FrameSource`] per player; a [`VoiceConnection`] fills that player's [`VoiceSlot`] with a
//! ready UDP transport; every 20 ms the pacer pulls one Opus frame from each player whose slot
//! holds a transport and sends it.
//!
//! (Interface: the implementation lands with the voice issue.)

use std::sync::Arc;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceServerInfo {
    pub guild_id: u64,
    pub user_id: u64,
    pub channel_id: u64,
    pub session_id: String,
    pub token: String,
    /// `host[:port]`, no scheme.
    pub endpoint: String,
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

/// The per-player place where the pacer finds the current transport.
#[derive(Default)]
pub struct VoiceSlot {
    _private: (),
}

impl VoiceSlot {
    pub fn new() -> Arc<Self> {
        Arc::new(VoiceSlot::default())
    }
}

/// Settings for the shared voice machinery.
#[derive(Debug, Clone)]
pub struct VoiceSettings {
    pub handshake_limit: usize,
}

/// Handle returned by [`VoiceContext::register`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacerKey(pub u64);

/// Shared by all players: the pacer thread, the handshake gate, the TLS client config.
/// (Stub until the voice branch lands.)
pub struct VoiceContext {
    _settings: VoiceSettings,
}

impl VoiceContext {
    pub fn new(settings: VoiceSettings) -> Arc<Self> {
        Arc::new(VoiceContext {
            _settings: settings,
        })
    }
    pub fn register(&self, _slot: Arc<VoiceSlot>, _source: Box<dyn FrameSource>) -> PacerKey {
        PacerKey(0)
    }
    pub fn unregister(&self, _key: PacerKey) {}
}

/// One Discord voice connection. (Stub until the voice branch lands.)
pub struct VoiceConnection {
    info: VoiceServerInfo,
}

impl VoiceConnection {
    pub fn connect(
        _ctx: &Arc<VoiceContext>,
        info: VoiceServerInfo,
        _slot: Arc<VoiceSlot>,
        _events: tokio::sync::mpsc::UnboundedSender<VoiceEvent>,
    ) -> VoiceConnection {
        VoiceConnection { info }
    }
    pub fn info(&self) -> &VoiceServerInfo {
        &self.info
    }
    pub fn is_connected(&self) -> bool {
        false
    }
    pub fn ping_ms(&self) -> i64 {
        -1
    }
    pub async fn disconnect(self) {}
}
