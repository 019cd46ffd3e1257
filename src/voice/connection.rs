//! One Discord voice connection: the handle the player holds and the background task that
//! connects through the handshake gate, keeps the session alive across drops (resume or
//! fresh reconnect, per the close policy) and tears it down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::context::VoiceContext;
use super::gateway::{self, ConnState, End, Link, Mode, Ws};
use super::metrics::{ConnectionState, HandshakePermit, StateGauge};
use super::policy::{self, CloseAction, RetryBudget};
use super::transport::VoiceSlot;
use super::{VoiceEvent, VoiceServerInfo};

/// How long a disconnect waits for the pacer to finish the silence frames.
const DRAIN_WAIT: Duration = Duration::from_millis(250);

/// Messages from the handle to its task.
pub(crate) enum Command {
    Disconnect(oneshot::Sender<()>),
}

impl Command {
    pub fn into_done(self) -> oneshot::Sender<()> {
        match self {
            Command::Disconnect(done) => done,
        }
    }
}

/// State the task publishes for the handle.
pub(crate) struct ConnShared {
    pub connected: AtomicBool,
    pub ping_ms: AtomicI64,
}

/// One Discord voice connection; connecting runs in the background.
///
/// Dropping it tears the connection down in the background (silence, `speaking: 0`, close
/// 1000, slot cleared) without blocking.
pub struct VoiceConnection {
    info: VoiceServerInfo,
    shared: Arc<ConnShared>,
    commands: Option<mpsc::UnboundedSender<Command>>,
}

impl std::fmt::Debug for VoiceConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceConnection")
            .field("info", &self.info)
            .field("connected", &self.is_connected())
            .field("ping_ms", &self.ping_ms())
            .finish()
    }
}

impl VoiceConnection {
    /// Starts connecting in the background and returns at once. Must be called within a
    /// Tokio runtime. The connection installs its transport in `slot` when ready and reports
    /// [`VoiceEvent`]s on `events`. A newer connection for the same slot supersedes this one.
    pub fn connect(
        ctx: &Arc<VoiceContext>,
        info: VoiceServerInfo,
        slot: Arc<VoiceSlot>,
        events: mpsc::UnboundedSender<VoiceEvent>,
    ) -> VoiceConnection {
        let id = ctx.next_connection_id();
        slot.claim(id);
        let shared = Arc::new(ConnShared {
            connected: AtomicBool::new(false),
            ping_ms: AtomicI64::new(-1),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(drive(
            ctx.clone(),
            info.clone(),
            id,
            slot,
            events,
            shared.clone(),
            rx,
        ));
        VoiceConnection {
            info,
            shared,
            commands: Some(tx),
        }
    }

    pub fn info(&self) -> &VoiceServerInfo {
        &self.info
    }

    /// Gateway open and ready (Lavalink's `state.connected`).
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Last heartbeat round trip in milliseconds, -1 if none yet.
    pub fn ping_ms(&self) -> i64 {
        self.shared.ping_ms.load(Ordering::Relaxed)
    }

    /// Silence frames, `speaking: 0`, WebSocket close 1000, slot cleared; returns when done.
    pub async fn disconnect(mut self) {
        if let Some(tx) = self.commands.take() {
            let (done, wait) = oneshot::channel();
            if tx.send(Command::Disconnect(done)).is_ok() {
                let _ = wait.await;
            }
        }
    }
}

/// The connection task.
async fn drive(
    ctx: Arc<VoiceContext>,
    info: VoiceServerInfo,
    connection_id: u64,
    slot: Arc<VoiceSlot>,
    events: mpsc::UnboundedSender<VoiceEvent>,
    shared: Arc<ConnShared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut gauge = StateGauge::new(ctx.metrics.clone(), ConnectionState::Connecting);
    let mut st = ConnState::new(&info);
    let mut budget = RetryBudget::default();
    let mut rng = StdRng::from_os_rng();
    let mut mode = Mode::Identify;

    loop {
        let permit = tokio::select! {
            biased;
            c = commands.recv() => {
                shutdown(None, &mut st, &slot).await;
                drop(gauge);
                finish(c.map(Command::into_done), &shared);
                return;
            }
            p = ctx.gate.clone().acquire_owned() => match p {
                Ok(p) => HandshakePermit::new(ctx.metrics.clone(), p),
                Err(_) => return, // the gate is never closed
            },
        };
        if mode == Mode::Identify {
            if let Some(old) = st.session.take() {
                slot.clear_if(old.transport.id);
            }
            st = ConnState::new(&info);
        }
        let mut link = Link {
            ctx: &ctx,
            info: &info,
            connection_id,
            slot: &slot,
            shared: &shared,
            events: &events,
            commands: &mut commands,
            gauge: &mut gauge,
        };
        let end = gateway::run(&mut link, &mut st, mode, permit).await;
        shared.connected.store(false, Ordering::Release);
        let close = match end {
            End::Disconnect { ws, done } => {
                shutdown(ws, &mut st, &slot).await;
                tracing::info!(guild_id = info.guild_id, code = 1000, "voice disconnected");
                drop(gauge);
                finish(done, &shared);
                return;
            }
            End::Closed(close) => close,
        };
        ctx.metrics.record_close(close.code);
        if let Some(lasted) = close.ready_for {
            budget.note_session_lasted(lasted);
        }
        let mut action = if close.fatal {
            CloseAction::Surface
        } else if mode == Mode::Resume {
            policy::resume_failed_action(close.code)
        } else {
            policy::close_action(close.code)
        };
        if action == CloseAction::Resume && st.session.is_none() {
            action = CloseAction::Reconnect;
        }
        let attempt = match action {
            CloseAction::Surface => None,
            _ => budget.take(),
        };
        if let Some(attempt) = attempt {
            tracing::info!(
                guild_id = info.guild_id,
                code = close.code,
                reason = %close.reason,
                by_remote = close.by_remote,
                attempt,
                action = ?action,
                "voice gateway closed; retrying"
            );
            gauge.set(ConnectionState::Reconnecting);
            if action == CloseAction::Reconnect
                && let Some(old) = st.session.take()
            {
                slot.clear_if(old.transport.id);
            }
            let delay = policy::backoff(attempt, rng.random());
            tokio::select! {
                biased;
                c = commands.recv() => {
                    shutdown(None, &mut st, &slot).await;
                    drop(gauge);
                    finish(c.map(Command::into_done), &shared);
                    return;
                }
                _ = tokio::time::sleep(delay) => {}
            }
            gauge.set(ConnectionState::Connecting);
            mode = if action == CloseAction::Resume {
                Mode::Resume
            } else {
                Mode::Identify
            };
            continue;
        }

        tracing::info!(
            guild_id = info.guild_id,
            code = close.code,
            reason = %close.reason,
            by_remote = close.by_remote,
            "voice connection closed"
        );
        if let Some(old) = st.session.take() {
            old.transport.closing.store(true, Ordering::Release);
            slot.clear_if(old.transport.id);
        }
        shared.ping_ms.store(-1, Ordering::Relaxed);
        drop(gauge);
        let _ = events.send(VoiceEvent::Closed {
            code: close.code,
            reason: close.reason,
            by_remote: close.by_remote,
        });
        return;
    }
}

fn finish(done: Option<oneshot::Sender<()>>, shared: &ConnShared) {
    shared.connected.store(false, Ordering::Release);
    shared.ping_ms.store(-1, Ordering::Relaxed);
    if let Some(done) = done {
        let _ = done.send(());
    }
}

/// Lets the pacer send its silence frames, then clears the slot, says `speaking: 0` and closes
/// the socket with 1000.
async fn shutdown(mut ws: Option<Box<Ws>>, st: &mut ConnState, slot: &VoiceSlot) {
    if let Some(mut session) = st.session.take() {
        let t = session.transport.clone();
        t.closing.store(true, Ordering::Release);
        let until = Instant::now() + DRAIN_WAIT;
        while !t.drained.load(Ordering::Acquire) && Instant::now() < until {
            let request = tokio::select! {
                v = session.speaking_rx.recv() => v,
                _ = tokio::time::sleep(Duration::from_millis(5)) => None,
            };
            if let Some(v) = request {
                let _ = gateway::apply_speaking(ws.as_deref_mut(), &mut session, v).await;
            }
        }
        slot.clear_if(t.id);
        if let Some(ws) = ws.take() {
            gateway::close_gracefully(ws, Some(&mut session)).await;
        }
    } else if let Some(ws) = ws.take() {
        gateway::close_gracefully(ws, None).await;
    }
}
