//! Client sessions: one per WebSocket connection, with Lavalink's resume semantics (spec §4.7).
//!
//! A session is `Open` while its socket is connected. When the socket closes it is either
//! destroyed at once or, with resuming enabled, `Paused`: players keep playing, events and
//! stats are queued, `playerUpdate`s are dropped, and REST answers 404 until the client
//! reconnects with `Session-Id` (queued messages are replayed in order) or the timeout expires.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc::UnboundedSender;

use crate::player::Player;
use crate::protocol::messages::OutgoingMessage;
use crate::protocol::player::SessionInfo;

/// What the WebSocket writer task receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsOut {
    Text(String),
    /// Close the socket with this code (e.g. 1001 at shutdown).
    Close(u16),
}

enum Link {
    Open(UnboundedSender<WsOut>),
    Paused(Vec<String>),
    Destroyed,
}

/// Where a session's messages go: the socket, the resume queue, or nowhere.
pub struct Outbox {
    link: Mutex<Link>,
}

/// Resume queue bound: beyond this the oldest messages are dropped (a client away for minutes
/// with many players would otherwise grow it without limit).
const MAX_QUEUED: usize = 10_000;

impl Outbox {
    fn new(tx: UnboundedSender<WsOut>) -> Self {
        Outbox {
            link: Mutex::new(Link::Open(tx)),
        }
    }

    /// Sends an event or stats message: queued while paused, dropped once destroyed.
    pub fn send(&self, msg: &OutgoingMessage) {
        let Ok(text) = serde_json::to_string(msg) else {
            return;
        };
        let mut link = self.link.lock();
        match &mut *link {
            Link::Open(tx) => {
                let _ = tx.send(WsOut::Text(text));
            }
            Link::Paused(queue) => {
                if queue.len() >= MAX_QUEUED {
                    queue.remove(0);
                }
                queue.push(text);
            }
            Link::Destroyed => {}
        }
    }

    /// Sends a `playerUpdate`: only while the socket is open (never queued).
    pub fn send_transient(&self, msg: &OutgoingMessage) {
        let link = self.link.lock();
        if let Link::Open(tx) = &*link
            && let Ok(text) = serde_json::to_string(msg)
        {
            let _ = tx.send(WsOut::Text(text));
        }
    }

    fn is_open(&self) -> bool {
        matches!(*self.link.lock(), Link::Open(_))
    }
}

/// One client session.
pub struct Session {
    pub id: String,
    pub user_id: u64,
    pub client_name: String,
    pub outbox: Arc<Outbox>,
    players: Mutex<HashMap<u64, Arc<Player>>>,
    resuming: AtomicBool,
    timeout_secs: AtomicI64,
    /// Bumped on every disconnect/resume, so a stale expiry timer does nothing.
    epoch: AtomicU64,
    destroyed: AtomicBool,
}

impl Session {
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            resuming: self.resuming.load(Ordering::Acquire),
            timeout: self.timeout_secs.load(Ordering::Acquire),
        }
    }

    pub fn set_resuming(&self, resuming: bool) {
        self.resuming.store(resuming, Ordering::Release);
    }

    pub fn set_timeout(&self, secs: i64) {
        self.timeout_secs.store(secs, Ordering::Release);
    }

    pub fn is_open(&self) -> bool {
        !self.destroyed.load(Ordering::Acquire) && self.outbox.is_open()
    }

    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::Acquire)
    }

    pub fn player(&self, guild_id: u64) -> Option<Arc<Player>> {
        self.players.lock().get(&guild_id).cloned()
    }

    pub fn players(&self) -> Vec<Arc<Player>> {
        let mut v: Vec<_> = self.players.lock().values().cloned().collect();
        v.sort_by_key(|p| p.guild_id);
        v
    }

    /// The player for `guild_id`, created with `make` if missing.
    pub fn player_or_insert_with(
        &self,
        guild_id: u64,
        make: impl FnOnce() -> Arc<Player>,
    ) -> Arc<Player> {
        self.players
            .lock()
            .entry(guild_id)
            .or_insert_with(make)
            .clone()
    }

    pub fn remove_player(&self, guild_id: u64) -> Option<Arc<Player>> {
        self.players.lock().remove(&guild_id)
    }
}

/// All sessions of the node.
#[derive(Default)]
pub struct Sessions {
    map: RwLock<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// A new open session writing to `tx`.
    pub fn create(
        &self,
        user_id: u64,
        client_name: String,
        tx: UnboundedSender<WsOut>,
    ) -> Arc<Session> {
        let mut map = self.map.write();
        let id = loop {
            let id = crate::util::session_id();
            if !map.contains_key(&id) {
                break id;
            }
        };
        let session = Arc::new(Session {
            id: id.clone(),
            user_id,
            client_name,
            outbox: Arc::new(Outbox::new(tx)),
            players: Mutex::new(HashMap::new()),
            resuming: AtomicBool::new(false),
            timeout_secs: AtomicI64::new(60),
            epoch: AtomicU64::new(0),
            destroyed: AtomicBool::new(false),
        });
        map.insert(id, session.clone());
        session
    }

    /// An open session (REST access). Paused and unknown sessions are `None`.
    pub fn get_open(&self, id: &str) -> Option<Arc<Session>> {
        self.map.read().get(id).filter(|s| s.is_open()).cloned()
    }

    /// All live sessions (open or paused).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.map.read().values().cloned().collect()
    }

    /// Reattaches a paused session to a new socket. Returns the session and the messages queued
    /// while it was away, in order; `None` if `id` is not a paused session.
    pub fn resume(
        &self,
        id: &str,
        tx: UnboundedSender<WsOut>,
    ) -> Option<(Arc<Session>, Vec<String>)> {
        let session = self.map.read().get(id).cloned()?;
        if session.destroyed.load(Ordering::Acquire) {
            return None;
        }
        let mut link = session.outbox.link.lock();
        let Link::Paused(queue) = &mut *link else {
            return None;
        };
        let queued = std::mem::take(queue);
        *link = Link::Open(tx);
        drop(link);
        session.epoch.fetch_add(1, Ordering::AcqRel);
        Some((session, queued))
    }

    /// The socket of `session` closed. Pauses it (resuming on) and arms the expiry timer, or
    /// destroys it. `tx` identifies the socket, so a close of an old socket after a resume is
    /// ignored.
    pub fn disconnected(self: &Arc<Self>, session: &Arc<Session>, tx: &UnboundedSender<WsOut>) {
        {
            let mut link = session.outbox.link.lock();
            match &*link {
                Link::Open(current) if current.same_channel(tx) => {}
                _ => return,
            }
            if session.resuming.load(Ordering::Acquire) {
                *link = Link::Paused(Vec::new());
            } else {
                *link = Link::Destroyed;
            }
        }
        if !session.resuming.load(Ordering::Acquire) {
            self.destroy(session);
            return;
        }
        let epoch = session.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let timeout = session.timeout_secs.load(Ordering::Acquire).max(0) as u64;
        let sessions = self.clone();
        let session = session.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(timeout)).await;
            if session.epoch.load(Ordering::Acquire) == epoch && !session.outbox.is_open() {
                tracing::info!(session = %session.id, "session was not resumed in time; destroying it");
                sessions.destroy(&session);
            }
        });
    }

    /// Destroys a session: events are dropped from now on, every player is stopped and its voice
    /// connection closed.
    pub fn destroy(&self, session: &Arc<Session>) {
        if session.destroyed.swap(true, Ordering::AcqRel) {
            return;
        }
        *session.outbox.link.lock() = Link::Destroyed;
        self.map.write().remove(&session.id);
        let players: Vec<_> = session.players.lock().drain().map(|(_, p)| p).collect();
        for player in players {
            tokio::spawn(async move { player.destroy().await });
        }
    }

    /// Closes every client socket with `code` (shutdown).
    pub fn close_all(&self, code: u16) {
        for session in self.all() {
            if let Link::Open(tx) = &*session.outbox.link.lock() {
                let _ = tx.send(WsOut::Close(code));
            }
        }
    }
}
