//! State shared by the gateway connections, the UDP receiver and the public API: registered
//! sessions (one per guild), media streams (one per SSRC), the event log and counters.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::config::{Behaviour, Config};
use crate::crypto::TransportCipher;
use crate::dave::{DaveCall, ToBot};
use crate::events::{Event, EventKind};
use crate::report::StreamStats;
use crate::wire::{op, server_binary_frame};

/// How many sequenced messages a session keeps for replay on resume.
const REPLAY_BUFFER: usize = 4096;

/// Locks a mutex, carrying on if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A message for one gateway connection.
#[derive(Debug)]
pub enum Out {
    Text(String),
    Binary(Vec<u8>),
    Close(u16, String),
    /// End the TCP connection without a close frame.
    Drop,
}

/// A server message before it is put on the wire (the sequence number depends on it).
#[derive(Debug, Clone)]
pub enum ServerMsg {
    Json { op: u8, d: Value },
    Binary { op: u8, payload: Vec<u8> },
}

impl ServerMsg {
    /// Renders the message for a connection of gateway `version`.
    pub fn render(&self, seq: Option<u16>, version: u8) -> Out {
        let seq = if version >= 8 { seq } else { None };
        match self {
            ServerMsg::Json { op, d } => {
                let mut v = json!({ "op": op, "d": d });
                if let Some(s) = seq {
                    v["seq"] = json!(s);
                }
                Out::Text(v.to_string())
            }
            ServerMsg::Binary { op, payload } => {
                Out::Binary(server_binary_frame(seq, *op, payload))
            }
        }
    }
}

impl From<ToBot> for ServerMsg {
    fn from(m: ToBot) -> ServerMsg {
        match m {
            ToBot::Json(op, d) => ServerMsg::Json { op, d },
            ToBot::Binary(op, payload) => ServerMsg::Binary { op, payload },
        }
    }
}

/// The connection currently attached to a session.
pub struct ConnHandle {
    pub id: u64,
    pub version: u8,
    pub tx: mpsc::UnboundedSender<Out>,
}

/// Mutable state of a session.
pub struct SessionState {
    pub conn: Option<ConnHandle>,
    /// Next sequence number to assign.
    pub next_seq: u16,
    /// Sequenced messages sent, for replay.
    pub buffer: VecDeque<(u16, ServerMsg)>,
    pub resumable: bool,
    /// SSRC of the current stream (after Ready).
    pub ssrc: Option<u32>,
    /// Whether the handshake reached Session Description on the current connection.
    pub described: bool,
    pub dave: Option<Arc<Mutex<DaveCall>>>,
    pub dave_protocol_version: u16,
}

/// A voice session a test registered: the credentials a client must present.
pub struct Session {
    pub guild_id: u64,
    pub user_id: u64,
    pub channel_id: u64,
    pub session_id: String,
    pub token: String,
    pub state: Mutex<SessionState>,
}

impl Session {
    /// Sends a message to the attached connection. Sequenced messages get the next sequence
    /// number and are kept for replay even when no connection is attached.
    pub fn send(&self, msg: ServerMsg, sequenced: bool) {
        let mut st = lock(&self.state);
        let seq = if sequenced {
            let s = st.next_seq;
            st.next_seq = s.wrapping_add(1);
            st.buffer.push_back((s, msg.clone()));
            if st.buffer.len() > REPLAY_BUFFER {
                st.buffer.pop_front();
            }
            Some(s)
        } else {
            None
        };
        if let Some(c) = &st.conn {
            let _ = c.tx.send(msg.render(seq, c.version));
        }
    }
}

/// One media stream (one SSRC handed out in Ready).
pub struct Stream {
    pub cipher: Option<TransportCipher>,
    pub selected_address: Option<SocketAddr>,
    pub stats: StreamStats,
    pub decoder: Option<opus::Decoder>,
    pub dave: Option<Arc<Mutex<DaveCall>>>,
}

/// Everything the tasks share.
pub struct Shared {
    pub config: Config,
    pub behaviour: Mutex<Behaviour>,
    pub started: Instant,
    pub sessions: Mutex<HashMap<u64, Arc<Session>>>,
    pub streams: Mutex<HashMap<u32, Arc<Mutex<Stream>>>>,
    /// Stream SSRCs per guild, oldest first.
    pub guild_streams: Mutex<HashMap<u64, Vec<u32>>>,
    pub events: Mutex<Vec<Event>>,
    /// Notified on every event and every received packet.
    pub changed: Notify,
    pub next_conn: AtomicU64,
    pub handshakes_in_flight: AtomicUsize,
    pub max_concurrent_handshakes: AtomicUsize,
    pub connections_total: AtomicU64,
    pub unknown_ssrc_packets: AtomicU64,
    pub non_rtp_packets: AtomicU64,
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
}

impl Shared {
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn event(&self, kind: EventKind) {
        lock(&self.events).push(Event {
            at: self.now(),
            kind,
        });
        self.changed.notify_waiters();
    }

    pub fn behaviour(&self) -> Behaviour {
        lock(&self.behaviour).clone()
    }

    pub fn session(&self, guild_id: u64) -> Option<Arc<Session>> {
        lock(&self.sessions).get(&guild_id).cloned()
    }

    /// Creates a new stream for a session and makes it the guild's current one.
    pub fn new_stream(&self, session: &Session, dave: Option<Arc<Mutex<DaveCall>>>) -> u32 {
        let mut streams = lock(&self.streams);
        let ssrc = loop {
            let s: u32 = rand::random::<u32>().max(1);
            if !streams.contains_key(&s) {
                break s;
            }
        };
        let mut stats = StreamStats::new(self.config.keep_pcm, self.config.keep_opus_frames);
        stats.report.guild_id = session.guild_id;
        stats.report.user_id = session.user_id;
        stats.report.ssrc = ssrc;
        streams.insert(
            ssrc,
            Arc::new(Mutex::new(Stream {
                cipher: None,
                selected_address: None,
                stats,
                decoder: None,
                dave,
            })),
        );
        lock(&self.guild_streams)
            .entry(session.guild_id)
            .or_default()
            .push(ssrc);
        ssrc
    }

    pub fn stream(&self, ssrc: u32) -> Option<Arc<Mutex<Stream>>> {
        lock(&self.streams).get(&ssrc).cloned()
    }

    /// Sends DAVE messages to the bot of `session`, logging each.
    pub fn send_dave(&self, session: &Session, msgs: Vec<ToBot>) {
        for m in msgs {
            let op = m.opcode();
            let transition_id = match &m {
                ToBot::Json(_, d) => d
                    .get("transition_id")
                    .and_then(Value::as_u64)
                    .map(|v| v as u16),
                ToBot::Binary(o, p)
                    if (*o == op::DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION
                        || *o == op::DAVE_MLS_WELCOME)
                        && p.len() >= 2 =>
                {
                    Some(u16::from_be_bytes([p[0], p[1]]))
                }
                _ => None,
            };
            if op == op::DAVE_EXECUTE_TRANSITION {
                let version = lock(&session.state)
                    .dave
                    .as_ref()
                    .map(|d| lock(d).protocol_version)
                    .unwrap_or(0);
                lock(&session.state).dave_protocol_version = version;
                self.set_stream_dave_version(session, version);
                self.event(EventKind::DaveTransitionExecuted {
                    guild_id: session.guild_id,
                    transition_id: transition_id.unwrap_or(0),
                    protocol_version: version,
                });
            }
            self.event(EventKind::DaveSent {
                guild_id: session.guild_id,
                op,
                transition_id,
            });
            session.send(m.into(), true);
        }
    }

    pub fn set_stream_dave_version(&self, session: &Session, version: u16) {
        if let Some(ssrc) = lock(&session.state).ssrc
            && let Some(s) = self.stream(ssrc)
        {
            lock(&s).stats.report.dave_protocol_version = version;
        }
    }

    /// Logs the errors the DAVE state collected.
    pub fn flush_dave_errors(&self, guild_id: u64, call: &Mutex<DaveCall>) {
        let errors = std::mem::take(&mut lock(call).errors);
        for detail in errors {
            self.event(EventKind::DaveError { guild_id, detail });
        }
    }
}
