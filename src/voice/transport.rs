//! The ready UDP transport of one voice session and the per-player slot the pacer finds it in.
//!
//! A [`Transport`] is built by the gateway task once Session Description arrives: a connected,
//! non-blocking UDP socket, the SSRC, the keyed transport cipher and the DAVE cell. It is
//! shared with the pacer through the player's [`VoiceSlot`] (an `ArcSwapOption`, so the pacer
//! reads it without locks). The speaking handshake between the two is lock-free: the pacer
//! numbers its requests, the gateway task sends op 5 and then publishes the number it acted on.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::crypto::TransportCipher;
use super::dave::DaveCell;

static NEXT_TRANSPORT_ID: AtomicU64 = AtomicU64::new(1);

/// One ready voice session's sending half.
pub struct Transport {
    /// Unique per transport; the pacer resets its RTP state when it changes.
    pub id: u64,
    /// The connection that built this transport.
    pub owner: u64,
    pub socket: UdpSocket,
    pub ssrc: u32,
    pub cipher: TransportCipher,
    pub dave: DaveCell,
    /// Speaking requests from the pacer: `(n << 1) | on`, n counting up.
    pub speaking_tx: mpsc::UnboundedSender<u32>,
    /// The last request the gateway task has acted on (op 5 sent).
    pub speaking_ack: AtomicU32,
    /// Set by the gateway task when the connection is being closed: the pacer stops pulling
    /// audio, finishes the silence frames and sets `drained`.
    pub closing: AtomicBool,
    pub drained: AtomicBool,
}

impl Transport {
    pub fn new(
        owner: u64,
        socket: UdpSocket,
        ssrc: u32,
        cipher: TransportCipher,
        dave: DaveCell,
    ) -> (Arc<Transport>, mpsc::UnboundedReceiver<u32>) {
        let (speaking_tx, speaking_rx) = mpsc::unbounded_channel();
        let t = Transport {
            id: NEXT_TRANSPORT_ID.fetch_add(1, Ordering::Relaxed),
            owner,
            socket,
            ssrc,
            cipher,
            dave,
            speaking_tx,
            speaking_ack: AtomicU32::new(0),
            closing: AtomicBool::new(false),
            drained: AtomicBool::new(false),
        };
        (Arc::new(t), speaking_rx)
    }
}

/// Frame counters of one player, written by the pacer.
#[derive(Debug, Default)]
struct FrameCounters {
    sent: AtomicU64,
    nulled: AtomicU64,
    missed: AtomicU64,
}

/// A snapshot of a player's frame counters (totals since the slot was created).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// Audio frames sent (silence frames not counted).
    pub sent: u64,
    /// Slots where the player had a track but no frame ready ([`super::FrameOutcome::Missing`]).
    pub nulled: u64,
    /// Slots where a frame was ready but could not go out on time (speaking not yet
    /// acknowledged, DAVE key missing, socket refused).
    pub missed: u64,
}

/// The per-player place where the pacer finds the current transport.
#[derive(Default)]
pub struct VoiceSlot {
    pub(crate) transport: ArcSwapOption<Transport>,
    /// The connection allowed to install a transport (the newest one for this player).
    owner: Mutex<u64>,
    counters: FrameCounters,
}

impl VoiceSlot {
    pub fn new() -> Arc<Self> {
        Arc::new(VoiceSlot::default())
    }

    /// Whether a ready transport is installed (the pacer is sending for this player).
    pub fn is_ready(&self) -> bool {
        self.transport.load().is_some()
    }

    /// The player's frame counters.
    pub fn frame_counts(&self) -> FrameCounts {
        FrameCounts {
            sent: self.counters.sent.load(Ordering::Relaxed),
            nulled: self.counters.nulled.load(Ordering::Relaxed),
            missed: self.counters.missed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_sent(&self) {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_nulled(&self) {
        self.counters.nulled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_missed(&self) {
        self.counters.missed.fetch_add(1, Ordering::Relaxed);
    }

    /// Makes `connection` the only one allowed to install transports from now on.
    pub(crate) fn claim(&self, connection: u64) {
        *self.owner.lock() = connection;
    }

    /// Installs `t` if its connection still owns the slot; returns whether it did.
    pub(crate) fn install(&self, t: Arc<Transport>) -> bool {
        let owner = self.owner.lock();
        if *owner != t.owner {
            return false;
        }
        self.transport.store(Some(t));
        true
    }

    /// Removes the transport if it is the one with id `transport_id`.
    pub(crate) fn clear_if(&self, transport_id: u64) {
        let _owner = self.owner.lock();
        let current = self.transport.load();
        if current.as_ref().is_some_and(|t| t.id == transport_id) {
            drop(current);
            self.transport.store(None);
        }
    }
}
