//! Observability hooks of the voice side: handshakes in flight, connections by state, close
//! codes seen, and the pacer's counters — kept as atomics, read as a snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;
use tokio::sync::OwnedSemaphorePermit;

use super::pacer::PacerStats;

/// Live counters, owned by the [`super::VoiceContext`].
#[derive(Debug, Default)]
pub struct VoiceMetrics {
    handshakes_in_flight: AtomicI64,
    connecting: AtomicI64,
    ready: AtomicI64,
    reconnecting: AtomicI64,
    /// Written when a gateway socket closes (never on the pacer's path).
    close_codes: Mutex<BTreeMap<u16, u64>>,
}

/// The state a voice connection is in, for the by-state gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Waiting for the handshake gate or handshaking.
    Connecting,
    /// Gateway open and ready; the transport is installed.
    Ready,
    /// Waiting to resume or reconnect after a close.
    Reconnecting,
}

/// Counts of connections by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionsByState {
    pub connecting: u64,
    pub ready: u64,
    pub reconnecting: u64,
}

/// The pacer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacerSnapshot {
    pub players: u64,
    pub ticks: u64,
    /// Ticks that began more than 5 ms after their deadline.
    pub late_ticks: u64,
    /// Ticks dropped after the pacer fell more than 200 ms behind.
    pub skipped_ticks: u64,
    pub max_lateness_us: u64,
    pub last_tick_work_us: u64,
    /// CPU time the pacer thread has used.
    pub cpu_us: u64,
    pub packets_sent: u64,
    pub send_errors: u64,
    /// UDP keepalives sent on quiet connections.
    pub keepalives_sent: u64,
    /// Frames whose DAVE cell was busy (an MLS operation running) when first tried.
    pub dave_deferred: u64,
    /// Of those, frames that waited for the next tick.
    pub dave_late: u64,
}

/// A point-in-time copy of all voice counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoiceMetricsSnapshot {
    pub handshakes_in_flight: u64,
    pub connections: ConnectionsByState,
    /// Close codes seen from voice gateways (and local 1006 for drops), with counts.
    pub close_codes: Vec<(u16, u64)>,
    pub pacer: PacerSnapshot,
}

impl VoiceMetrics {
    pub(crate) fn record_close(&self, code: u16) {
        *self.close_codes.lock().entry(code).or_insert(0) += 1;
    }

    fn gauge(&self, state: ConnectionState) -> &AtomicI64 {
        match state {
            ConnectionState::Connecting => &self.connecting,
            ConnectionState::Ready => &self.ready,
            ConnectionState::Reconnecting => &self.reconnecting,
        }
    }

    pub(crate) fn snapshot(&self, pacer: &PacerStats) -> VoiceMetricsSnapshot {
        let get = |a: &AtomicI64| a.load(Ordering::Relaxed).max(0) as u64;
        VoiceMetricsSnapshot {
            handshakes_in_flight: get(&self.handshakes_in_flight),
            connections: ConnectionsByState {
                connecting: get(&self.connecting),
                ready: get(&self.ready),
                reconnecting: get(&self.reconnecting),
            },
            close_codes: self
                .close_codes
                .lock()
                .iter()
                .map(|(&c, &n)| (c, n))
                .collect(),
            pacer: PacerSnapshot {
                players: pacer.players.load(Ordering::Relaxed) as u64,
                ticks: pacer.ticks.load(Ordering::Relaxed),
                late_ticks: pacer.late_ticks.load(Ordering::Relaxed),
                skipped_ticks: pacer.skipped_ticks.load(Ordering::Relaxed),
                max_lateness_us: pacer.max_lateness_us.load(Ordering::Relaxed),
                last_tick_work_us: pacer.last_tick_work_us.load(Ordering::Relaxed),
                cpu_us: pacer.cpu_us.load(Ordering::Relaxed),
                packets_sent: pacer.packets_sent.load(Ordering::Relaxed),
                send_errors: pacer.send_errors.load(Ordering::Relaxed),
                keepalives_sent: pacer.keepalives_sent.load(Ordering::Relaxed),
                dave_deferred: pacer.dave_deferred.load(Ordering::Relaxed),
                dave_late: pacer.dave_late.load(Ordering::Relaxed),
            },
        }
    }
}

/// Keeps one connection counted under its current state; uncounts it when dropped.
pub(crate) struct StateGauge {
    metrics: Arc<VoiceMetrics>,
    state: ConnectionState,
}

impl StateGauge {
    pub fn new(metrics: Arc<VoiceMetrics>, state: ConnectionState) -> Self {
        metrics.gauge(state).fetch_add(1, Ordering::Relaxed);
        StateGauge { metrics, state }
    }

    pub fn set(&mut self, state: ConnectionState) {
        if state != self.state {
            self.metrics
                .gauge(self.state)
                .fetch_sub(1, Ordering::Relaxed);
            self.metrics.gauge(state).fetch_add(1, Ordering::Relaxed);
            self.state = state;
        }
    }
}

impl Drop for StateGauge {
    fn drop(&mut self) {
        self.metrics
            .gauge(self.state)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A handshake gate permit, counted while held.
pub(crate) struct HandshakePermit {
    metrics: Arc<VoiceMetrics>,
    _permit: OwnedSemaphorePermit,
}

impl HandshakePermit {
    pub fn new(metrics: Arc<VoiceMetrics>, permit: OwnedSemaphorePermit) -> Self {
        metrics.handshakes_in_flight.fetch_add(1, Ordering::Relaxed);
        HandshakePermit {
            metrics,
            _permit: permit,
        }
    }
}

impl Drop for HandshakePermit {
    fn drop(&mut self) {
        self.metrics
            .handshakes_in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}
