//! DAVE (end-to-end encryption) for one voice session: the MLS flow driven by the gateway
//! task, and the shared cell the pacer encrypts media frames through.
//!
//! The gateway task owns a [`DaveDriver`], which turns the DAVE opcodes (21–31) into calls on
//! `davey`'s `DaveSession` and into the messages to send back. The session itself lives in a
//! [`DaveCell`] inside the transport, behind a mutex shared only by that connection's gateway
//! task and the pacer. MLS operations can take milliseconds; the pacer therefore only
//! `try_lock`s on its first pass and retries a contended player after all the others (see the
//! pacer), so a commit being processed delays one player's packet, never the whole tick.
//!
//! The cell's [`MediaMode`] says what the pacer does with a media frame: send it as is
//! (passthrough: DAVE off or downgraded), encrypt it, or send none (a DAVE call whose group
//! is not established yet, or where we are alone: there is no key to encrypt with).

use std::collections::HashMap;
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use davey::{Codec, DaveSession, MediaType, ProposalsOperationType};
use parking_lot::{Mutex, MutexGuard};

use super::payload::{self, ServerEvent, TransitionId, op};
use super::rtp::OPUS_SILENCE_FRAME;

/// What the pacer does with media frames right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MediaMode {
    /// No end-to-end encryption (protocol version 0, or after a downgrade).
    Passthrough = 0,
    /// A DAVE call without a send key (group not established yet, or we are its only
    /// member): no media can be sent. The pacer holds audio for a moment, then drops it.
    Pending = 1,
    /// Encrypt every media frame with the current key.
    Encrypt = 2,
}

impl MediaMode {
    fn from_u8(v: u8) -> MediaMode {
        match v {
            0 => MediaMode::Passthrough,
            1 => MediaMode::Pending,
            _ => MediaMode::Encrypt,
        }
    }
}

/// The DAVE state a transport carries; shared by the gateway task and the pacer.
pub struct DaveCell {
    /// Mirror of `inner.mode`, readable without the lock.
    mode: AtomicU8,
    inner: Mutex<DaveInner>,
}

struct DaveInner {
    mode: MediaMode,
    session: Option<DaveSession>,
}

/// Result of asking the cell to prepare a frame for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramePrep {
    /// Send the frame unchanged.
    Plain,
    /// Send `out` (the DAVE-encrypted frame).
    Encrypted,
    /// Do not send: no key yet, or encryption failed.
    NotReady,
    /// The gateway task holds the lock (an MLS operation is running): try again later.
    Contended,
}

impl DaveCell {
    fn new(mode: MediaMode, session: Option<DaveSession>) -> Self {
        DaveCell {
            mode: AtomicU8::new(mode as u8),
            inner: Mutex::new(DaveInner { mode, session }),
        }
    }

    /// A cell for a session without DAVE.
    pub fn passthrough() -> Self {
        Self::new(MediaMode::Passthrough, None)
    }

    /// The current media mode (lock-free).
    pub fn mode(&self) -> MediaMode {
        MediaMode::from_u8(self.mode.load(Ordering::Acquire))
    }

    /// Prepares one Opus frame for sending. Encrypts into `out` (whose capacity must already
    /// fit the frame plus DAVE's overhead, so nothing is allocated) when DAVE is active. With
    /// `wait_until` the lock is waited for until then; without, it is only tried.
    pub fn prepare_frame(
        &self,
        frame: &[u8],
        out: &mut Vec<u8>,
        wait_until: Option<Instant>,
    ) -> FramePrep {
        match self.mode() {
            MediaMode::Passthrough => return FramePrep::Plain,
            MediaMode::Pending => return FramePrep::NotReady,
            MediaMode::Encrypt => {}
        }
        if frame == OPUS_SILENCE_FRAME {
            return FramePrep::Plain;
        }
        let guard = match wait_until {
            None => self.inner.try_lock(),
            Some(t) => self.inner.try_lock_until(t),
        };
        let Some(mut inner) = guard else {
            return FramePrep::Contended;
        };
        match inner.mode {
            MediaMode::Passthrough => FramePrep::Plain,
            MediaMode::Pending => FramePrep::NotReady,
            MediaMode::Encrypt => match inner.session.as_mut() {
                Some(s) => match s.encrypt_into(MediaType::AUDIO, Codec::OPUS, frame, out) {
                    Ok(()) => FramePrep::Encrypted,
                    Err(_) => FramePrep::NotReady,
                },
                None => FramePrep::NotReady,
            },
        }
    }

    fn lock(&self) -> DaveLock<'_> {
        DaveLock {
            cell: self,
            inner: self.inner.lock(),
            since: Instant::now(),
        }
    }
}

/// The gateway task's hold on the cell; keeps the lock-free mirror in step with the mode.
struct DaveLock<'a> {
    cell: &'a DaveCell,
    inner: MutexGuard<'a, DaveInner>,
    since: Instant,
}

impl Drop for DaveLock<'_> {
    fn drop(&mut self) {
        let held = self.since.elapsed();
        if held > HOLD_REPORT_THRESHOLD {
            tracing::debug!(
                held_us = held.as_micros() as u64,
                "DAVE cell held by an MLS operation"
            );
        }
    }
}

/// MLS operations holding the cell longer than this are logged (at debug level): the pacer
/// works around a busy cell, but long holds delay that player's packets.
const HOLD_REPORT_THRESHOLD: std::time::Duration = std::time::Duration::from_millis(2);

impl DaveLock<'_> {
    fn set_mode(&mut self, mode: MediaMode) {
        self.inner.mode = mode;
        self.cell.mode.store(mode as u8, Ordering::Release);
    }
}

/// A message the gateway task must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
}

/// The gateway side of DAVE for one session: reacts to the DAVE opcodes and to the list of
/// users in the call.
pub struct DaveDriver {
    user_id: u64,
    channel_id: u64,
    /// The protocol version the gateway asked for most recently.
    protocol_version: u16,
    /// Prepared transitions and the protocol version each moves to.
    transitions: HashMap<u16, u16>,
    /// Users known to be in the call (ourselves included), for proposal/welcome validation.
    recognized: Vec<u64>,
}

impl DaveDriver {
    pub fn new(user_id: u64, channel_id: u64) -> Self {
        DaveDriver {
            user_id,
            channel_id,
            protocol_version: 0,
            transitions: HashMap::new(),
            recognized: vec![user_id],
        }
    }

    /// The users currently known to be in the call.
    #[cfg(test)]
    pub fn recognized_users(&self) -> &[u64] {
        &self.recognized
    }

    /// Op 4 arrived: returns the cell for the new transport and what to send (the key
    /// package when DAVE is on).
    pub fn on_session_description(
        &mut self,
        dave_protocol_version: u16,
    ) -> (DaveCell, Vec<Outgoing>) {
        self.protocol_version = dave_protocol_version;
        self.transitions.clear();
        let Some(version) = NonZeroU16::new(dave_protocol_version) else {
            return (DaveCell::passthrough(), Vec::new());
        };
        let mut out = Vec::new();
        match DaveSession::new(version, self.user_id, self.channel_id, None) {
            Ok(mut session) => {
                push_key_package(&mut session, &mut out);
                (DaveCell::new(MediaMode::Pending, Some(session)), out)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not create the DAVE session");
                (DaveCell::new(MediaMode::Pending, None), out)
            }
        }
    }

    /// Whether `event` is one this driver handles (and needs the cell for).
    pub fn handles(event: &ServerEvent) -> bool {
        matches!(
            event,
            ServerEvent::ClientsConnect(_)
                | ServerEvent::ClientDisconnect(_)
                | ServerEvent::PrepareTransition(_)
                | ServerEvent::ExecuteTransition(_)
                | ServerEvent::PrepareEpoch(_)
                | ServerEvent::ExternalSender(_)
                | ServerEvent::Proposals { .. }
                | ServerEvent::AnnounceCommit { .. }
                | ServerEvent::Welcome { .. }
        )
    }

    /// Tracks users joining and leaving; needs no session.
    pub fn track_users(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::ClientsConnect(c) => {
                for u in &c.user_ids {
                    if !self.recognized.contains(&u.0) {
                        self.recognized.push(u.0);
                    }
                }
            }
            ServerEvent::ClientDisconnect(c) if c.user_id.0 != self.user_id => {
                self.recognized.retain(|&u| u != c.user_id.0);
            }
            _ => {}
        }
    }

    /// Handles one DAVE-related server event; returns what to send back.
    pub fn handle(&mut self, cell: &DaveCell, event: &ServerEvent) -> Vec<Outgoing> {
        let mut out = Vec::new();
        match event {
            ServerEvent::ClientsConnect(_) | ServerEvent::ClientDisconnect(_) => {
                self.track_users(event)
            }
            ServerEvent::PrepareTransition(p) => {
                let mut lock = cell.lock();
                if let Some(s) = lock.inner.session.as_mut()
                    && let Err(e) = s.prepare_transition(p.transition_id, p.protocol_version)
                {
                    tracing::warn!(error = %e, transition = p.transition_id, "DAVE prepare transition failed");
                }
                if p.transition_id == 0 {
                    self.apply(&mut lock, p.protocol_version);
                } else {
                    self.transitions.insert(p.transition_id, p.protocol_version);
                    drop(lock);
                    out.push(transition_ready(p.transition_id));
                }
            }
            ServerEvent::ExecuteTransition(e) => {
                let mut lock = cell.lock();
                if let Some(s) = lock.inner.session.as_mut()
                    && let Err(err) = s.execute_transition(e.transition_id)
                {
                    tracing::warn!(error = %err, transition = e.transition_id, "DAVE execute transition failed");
                }
                match self.transitions.remove(&e.transition_id) {
                    Some(version) => self.apply(&mut lock, version),
                    None => tracing::debug!(
                        transition = e.transition_id,
                        "execute for an unknown DAVE transition"
                    ),
                }
            }
            ServerEvent::PrepareEpoch(p) if p.epoch == 1 => {
                // A new group: re-initialise and send a fresh key package.
                self.protocol_version = p.protocol_version;
                let mut lock = cell.lock();
                self.reinit(&mut lock, &mut out);
            }
            ServerEvent::ExternalSender(bytes) => {
                let mut lock = cell.lock();
                match lock.inner.session.as_mut() {
                    Some(s) => {
                        if let Err(e) = s.set_external_sender(bytes) {
                            tracing::warn!(error = %e, "DAVE external sender rejected");
                        }
                    }
                    None => tracing::debug!("DAVE external sender without a session"),
                }
            }
            ServerEvent::Proposals {
                operation,
                proposals,
            } => {
                let op_type = if *operation == 0 {
                    ProposalsOperationType::APPEND
                } else {
                    ProposalsOperationType::REVOKE
                };
                let mut lock = cell.lock();
                if let Some(s) = lock.inner.session.as_mut() {
                    match s.process_proposals(op_type, proposals, Some(&self.recognized)) {
                        Ok(Some(cw)) => {
                            let welcome = cw.welcome.as_deref().unwrap_or(&[]);
                            out.push(Outgoing::Binary(payload::binary_frame(
                                op::DAVE_MLS_COMMIT_WELCOME,
                                &[&cw.commit, welcome],
                            )));
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "DAVE proposals rejected"),
                    }
                }
            }
            ServerEvent::AnnounceCommit {
                transition_id,
                commit,
            } => {
                let mut lock = cell.lock();
                let result = match lock.inner.session.as_mut() {
                    Some(s) => s.process_commit(commit).map_err(|e| e.to_string()),
                    None => Ok(false),
                };
                match result {
                    Ok(true) => self.transition_material_ready(&mut lock, *transition_id, &mut out),
                    Ok(false) => tracing::debug!(transition = transition_id, "DAVE commit ignored"),
                    Err(e) => {
                        tracing::warn!(error = %e, transition = transition_id, "DAVE commit invalid");
                        self.invalid(&mut lock, *transition_id, &mut out);
                    }
                }
            }
            ServerEvent::Welcome {
                transition_id,
                welcome,
            } => {
                let mut lock = cell.lock();
                let result = match lock.inner.session.as_mut() {
                    Some(s) => s
                        .process_welcome(welcome, Some(&self.recognized))
                        .map_err(|e| e.to_string()),
                    None => Err("no DAVE session".to_owned()),
                };
                match result {
                    Ok(()) => self.transition_material_ready(&mut lock, *transition_id, &mut out),
                    Err(e) => {
                        tracing::warn!(error = %e, transition = transition_id, "DAVE welcome invalid");
                        self.invalid(&mut lock, *transition_id, &mut out);
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// A commit or welcome was processed: prepare the transition and either apply it at once
    /// (transition 0: we are the only member) or tell the gateway we are ready.
    fn transition_material_ready(
        &mut self,
        lock: &mut DaveLock<'_>,
        transition_id: u16,
        out: &mut Vec<Outgoing>,
    ) {
        let version = self.protocol_version;
        if let Some(s) = lock.inner.session.as_mut()
            && let Err(e) = s.prepare_transition(transition_id, version)
        {
            tracing::warn!(error = %e, transition = transition_id, "DAVE prepare transition failed");
        }
        if transition_id == 0 {
            self.apply(lock, version);
        } else {
            self.transitions.insert(transition_id, version);
            out.push(transition_ready(transition_id));
        }
    }

    /// A transition to `version` took effect: set what the pacer does.
    fn apply(&mut self, lock: &mut DaveLock<'_>, version: u16) {
        if version == 0 {
            lock.set_mode(MediaMode::Passthrough);
        } else if lock.inner.session.as_ref().is_some_and(|s| s.can_encrypt()) {
            lock.set_mode(MediaMode::Encrypt);
        } else {
            lock.set_mode(MediaMode::Pending);
        }
    }

    /// Op 31 for the transition, then a fresh session and key package.
    fn invalid(&mut self, lock: &mut DaveLock<'_>, transition_id: u16, out: &mut Vec<Outgoing>) {
        out.push(Outgoing::Text(payload::to_json(
            op::DAVE_MLS_INVALID_COMMIT_WELCOME,
            TransitionId { transition_id },
        )));
        self.reinit(lock, out);
    }

    /// Re-creates the MLS state (keeping the current send key until the next transition) and
    /// queues a new key package.
    fn reinit(&mut self, lock: &mut DaveLock<'_>, out: &mut Vec<Outgoing>) {
        let Some(version) = NonZeroU16::new(self.protocol_version) else {
            return;
        };
        let result = match lock.inner.session.as_mut() {
            Some(s) => s
                .reinit(version, self.user_id, self.channel_id, None)
                .map_err(|e| e.to_string()),
            None => DaveSession::new(version, self.user_id, self.channel_id, None)
                .map(|s| {
                    lock.inner.session = Some(s);
                })
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "DAVE session re-init failed");
            return;
        }
        if let Some(s) = lock.inner.session.as_mut() {
            push_key_package(s, out);
        }
    }
}

fn push_key_package(session: &mut DaveSession, out: &mut Vec<Outgoing>) {
    match session.create_key_package() {
        Ok(kp) => out.push(Outgoing::Binary(payload::binary_frame(
            op::DAVE_MLS_KEY_PACKAGE,
            &[&kp],
        ))),
        Err(e) => tracing::warn!(error = %e, "DAVE key package creation failed"),
    }
}

fn transition_ready(transition_id: u16) -> Outgoing {
    Outgoing::Text(payload::to_json(
        op::DAVE_TRANSITION_READY,
        TransitionId { transition_id },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::payload::{
        ClientDisconnect, ClientsConnect, ExecuteTransition, PrepareEpoch, PrepareTransition,
        Snowflake,
    };
    use bytes::Bytes;

    fn json(o: &Outgoing) -> serde_json::Value {
        match o {
            Outgoing::Text(t) => serde_json::from_str(t).unwrap(),
            Outgoing::Binary(_) => panic!("expected text"),
        }
    }

    #[test]
    fn without_dave_the_cell_passes_frames_through() {
        let mut d = DaveDriver::new(1, 2);
        let (cell, out) = d.on_session_description(0);
        assert!(out.is_empty());
        assert_eq!(cell.mode(), MediaMode::Passthrough);
        let mut buf = Vec::with_capacity(64);
        assert_eq!(
            cell.prepare_frame(&[1, 2, 3], &mut buf, None),
            FramePrep::Plain
        );
    }

    #[test]
    fn dave_session_sends_a_key_package_and_holds_audio_until_a_transition() {
        let mut d = DaveDriver::new(1, 2);
        let (cell, out) = d.on_session_description(1);
        assert_eq!(out.len(), 1);
        let Outgoing::Binary(kp) = &out[0] else {
            panic!()
        };
        assert_eq!(kp[0], op::DAVE_MLS_KEY_PACKAGE);
        assert!(kp.len() > 100, "an MLS key package, not a stub");
        assert_eq!(cell.mode(), MediaMode::Pending);
        let mut buf = Vec::with_capacity(64);
        assert_eq!(
            cell.prepare_frame(&[1, 2, 3], &mut buf, None),
            FramePrep::NotReady
        );
    }

    #[test]
    fn downgrade_with_transition_zero_applies_at_once() {
        let mut d = DaveDriver::new(1, 2);
        let (cell, _) = d.on_session_description(1);
        let out = d.handle(
            &cell,
            &ServerEvent::PrepareTransition(PrepareTransition {
                protocol_version: 0,
                transition_id: 0,
            }),
        );
        assert!(out.is_empty());
        assert_eq!(cell.mode(), MediaMode::Passthrough);
    }

    #[test]
    fn downgrade_with_an_id_waits_for_execute_and_answers_ready() {
        let mut d = DaveDriver::new(1, 2);
        let (cell, _) = d.on_session_description(1);
        let out = d.handle(
            &cell,
            &ServerEvent::PrepareTransition(PrepareTransition {
                protocol_version: 0,
                transition_id: 7,
            }),
        );
        assert_eq!(
            out.iter().map(json).collect::<Vec<_>>(),
            vec![serde_json::json!({"op": 23, "d": {"transition_id": 7}})]
        );
        assert_eq!(cell.mode(), MediaMode::Pending);
        d.handle(
            &cell,
            &ServerEvent::ExecuteTransition(ExecuteTransition { transition_id: 8 }),
        );
        assert_eq!(
            cell.mode(),
            MediaMode::Pending,
            "unknown transition ignored"
        );
        d.handle(
            &cell,
            &ServerEvent::ExecuteTransition(ExecuteTransition { transition_id: 7 }),
        );
        assert_eq!(cell.mode(), MediaMode::Passthrough);
    }

    #[test]
    fn invalid_commit_answers_op_31_and_a_new_key_package() {
        let mut d = DaveDriver::new(1, 2);
        let (cell, _) = d.on_session_description(1);
        // A group needs an external sender first; without one the commit cannot be processed.
        let out = d.handle(
            &cell,
            &ServerEvent::Welcome {
                transition_id: 3,
                welcome: Bytes::from_static(&[1, 2, 3]),
            },
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            json(&out[0]),
            serde_json::json!({"op": 31, "d": {"transition_id": 3}})
        );
        assert!(matches!(&out[1], Outgoing::Binary(b) if b[0] == op::DAVE_MLS_KEY_PACKAGE));
    }

    #[test]
    fn prepare_epoch_one_resets_and_sends_a_key_package() {
        let mut d = DaveDriver::new(1, 2);
        let (cell, _) = d.on_session_description(0);
        assert!(
            d.handle(
                &cell,
                &ServerEvent::PrepareEpoch(PrepareEpoch {
                    protocol_version: 1,
                    epoch: 5
                })
            )
            .is_empty()
        );
        let out = d.handle(
            &cell,
            &ServerEvent::PrepareEpoch(PrepareEpoch {
                protocol_version: 1,
                epoch: 1,
            }),
        );
        assert!(matches!(&out[..], [Outgoing::Binary(b)] if b[0] == op::DAVE_MLS_KEY_PACKAGE));
        // Still passthrough until a transition to the new group executes.
        assert_eq!(cell.mode(), MediaMode::Passthrough);
    }

    #[test]
    fn user_tracking_keeps_ourselves() {
        let mut d = DaveDriver::new(1, 2);
        d.track_users(&ServerEvent::ClientsConnect(ClientsConnect {
            user_ids: vec![Snowflake(5), Snowflake(6), Snowflake(5)],
        }));
        d.track_users(&ServerEvent::ClientDisconnect(ClientDisconnect {
            user_id: Snowflake(5),
        }));
        d.track_users(&ServerEvent::ClientDisconnect(ClientDisconnect {
            user_id: Snowflake(1),
        }));
        assert_eq!(d.recognized_users(), &[1, 6]);
    }
}
