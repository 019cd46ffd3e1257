//! A fake Discord voice server for tests: it speaks Discord's side of the voice gateway
//! (versions 8 and 4, chosen by `?v=` in the URL) and receives the media, decrypts and decodes
//! it, and reports what arrived.
//!
//! What it does, in Discord's order:
//! - **Gateway**, over TLS with a generated CA (server certificate for `localhost` and
//!   `127.0.0.1`) or plain `ws://` on the same port: Hello; Identify checked against the
//!   registered session (wrong → close 4004; DAVE required and not offered → 4017); Ready with
//!   a new SSRC, the UDP address and the offered modes; Select Protocol (a mode not offered →
//!   4016); Session Description with a random 32-byte key and `dave_protocol_version`;
//!   heartbeats answered (v8 `{t, seq_ack}` or v4 plain nonce; none in time → 4009); `seq` on
//!   sequenced messages and the 2-byte sequence number on binary messages (v8); Resume (op 7)
//!   → Resumed (op 9) with re-delivery of the buffered messages after `seq_ack` (v8), or
//!   close 4006 for a bad or refused resume.
//! - **UDP**: IP discovery answered; voice packets decrypted with `aead_aes256_gcm_rtpsize` or
//!   `aead_xchacha20_poly1305_rtpsize` (xsalsa20 modes are never offered).
//! - **DAVE**: the server is the MLS external sender (op 25), receives key packages (op 26),
//!   sends proposals (op 27), receives commits/welcomes (op 28), announces commits (op 29) and
//!   welcomes (op 30), prepares and executes transitions (ops 21, 22, 24) on Transition Ready
//!   (op 23), and handles Invalid Commit Welcome (op 31). Internal *listener* members (davey
//!   sessions for other user ids) join the group as other people in the channel would and
//!   decrypt the bot's frames.
//! - **Reports** per stream: packets, packets/s, sequence gaps / duplicates / reorders,
//!   timestamp steps, arrival gap p50/p99/max, transport and DAVE decrypt failures, silence
//!   frames, Speaking history, decoded PCM (48 kHz stereo `i16`) and the decrypted Opus frames.
//!
//! A test reads like this:
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use fake_discord::{Config, FakeDiscord};
//!
//! let discord = FakeDiscord::start(Config::default()).await.unwrap();
//! discord.write_ca_file("/tmp/fake-discord-ca.pem").unwrap(); // for SSL_CERT_FILE
//! let (token, session_id) = discord.register_session(1, 2, 3);
//! // ... hand `discord.endpoint()`, token and session_id to the client under test ...
//! assert!(discord.wait_connected(1, Duration::from_secs(5)).await);
//! discord.wait_packets(1, 100, Duration::from_secs(5)).await;
//! let report = discord.stream_report(1).unwrap();
//! assert_eq!(report.decrypt_failures(), 0);
//! assert_eq!(report.lost_packets, 0);
//! discord.close(1, 4015, "voice server crashed"); // the client should resume
//! # }
//! ```
//!
//! The `fake-discord` binary runs the same server and offers this API as JSON lines on
//! stdin/stdout (see `control`), for tools that need it as a separate process.

pub mod audio;
pub mod config;
pub mod control;
pub mod crypto;
pub mod dave;
pub mod events;
mod gateway;
pub mod report;
mod server;
mod tls;
mod udp;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use config::{Behaviour, Config, EndpointHost};
pub use crypto::Mode;
pub use dave::DaveJoin;
pub use events::{Closer, Event, EventKind};
pub use report::StreamReport;

use server::{Out, ServerMsg, Session, SessionState, Shared, lock};

/// Why the server could not start or a script could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Server-wide counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// WebSocket connections accepted.
    pub connections: u64,
    /// Connections between WebSocket accept and Session Description (or Resumed) right now.
    pub handshakes_in_flight: usize,
    /// The most handshakes that were in flight at once since the last `reset_stats`.
    pub max_concurrent_handshakes: usize,
    /// Voice packets for an SSRC the server never handed out.
    pub unknown_ssrc_packets: u64,
    /// UDP packets that were neither IP discovery nor RTP voice.
    pub non_rtp_packets: u64,
}

/// DAVE state of a guild's call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaveStatus {
    /// Protocol version of the last executed transition.
    pub protocol_version: u16,
    /// Epoch of the established group (0: none).
    pub epoch: u64,
    pub bot_in_group: bool,
    pub listeners: Vec<u64>,
    /// The bot's media should be DAVE-encrypted now and a listener can decrypt it.
    pub media_keys_live: bool,
    pub pending_transitions: Vec<u16>,
}

/// A running fake voice server. Dropping it stops the listeners.
pub struct FakeDiscord {
    shared: Arc<Shared>,
    ca_pem: String,
    stop: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.accept.abort();
        for s in lock(&self.shared.sessions).values() {
            if let Some(c) = &lock(&s.state).conn {
                let _ = c.tx.send(Out::Drop);
            }
        }
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

impl FakeDiscord {
    /// Binds the gateway and UDP sockets, generates the certificates and starts serving.
    /// Must be called inside a tokio runtime.
    pub async fn start(config: Config) -> Result<FakeDiscord, Error> {
        let certs = tls::generate().map_err(Error)?;
        let listener = tokio::net::TcpListener::bind((config.bind_ip, config.port))
            .await
            .map_err(|e| Error(format!("bind gateway: {e}")))?;
        let udp = std::net::UdpSocket::bind((config.bind_ip, config.udp_port))
            .map_err(|e| Error(format!("bind UDP: {e}")))?;
        let tcp_addr = listener.local_addr().map_err(|e| Error(e.to_string()))?;
        let udp_addr = udp.local_addr().map_err(|e| Error(e.to_string()))?;
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(config.behaviour.clone()),
            config,
            started: Instant::now(),
            sessions: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            guild_streams: Mutex::new(HashMap::new()),
            events: Mutex::new(Vec::new()),
            changed: tokio::sync::Notify::new(),
            next_conn: AtomicU64::new(0),
            handshakes_in_flight: AtomicUsize::new(0),
            max_concurrent_handshakes: AtomicUsize::new(0),
            connections_total: AtomicU64::new(0),
            unknown_ssrc_packets: AtomicU64::new(0),
            non_rtp_packets: AtomicU64::new(0),
            udp_addr,
            tcp_addr,
        });
        let stop = Arc::new(AtomicBool::new(false));
        udp::start(shared.clone(), udp, stop.clone());
        let accept = tokio::spawn(gateway::accept_loop(
            shared.clone(),
            listener,
            certs.acceptor,
        ));
        Ok(FakeDiscord {
            shared,
            ca_pem: certs.ca_pem,
            stop,
            accept,
        })
    }

    /// The endpoint to hand a client, without scheme: "127.0.0.1:PORT" or "localhost:PORT".
    pub fn endpoint(&self) -> String {
        let port = self.shared.tcp_addr.port();
        match self.shared.config.endpoint_host {
            EndpointHost::Ip => format!("{}:{port}", self.shared.tcp_addr.ip()),
            EndpointHost::Localhost => format!("localhost:{port}"),
        }
    }

    /// The gateway's socket address.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.shared.tcp_addr
    }

    /// The UDP media socket's address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.shared.udp_addr
    }

    /// When the server started; report and event times count from here.
    pub fn started_at(&self) -> Instant {
        self.shared.started
    }

    /// PEM of the CA that signed the gateway's certificate.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes the CA certificate, e.g. for a client started with `SSL_CERT_FILE` pointing at it.
    pub fn write_ca_file(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, &self.ca_pem)
    }

    /// Registers the voice session a client will identify with; returns `(token, session_id)`.
    /// Registering a guild again replaces its session.
    pub fn register_session(
        &self,
        guild_id: u64,
        user_id: u64,
        channel_id: u64,
    ) -> (String, String) {
        let token = random_hex(16);
        let session_id = random_hex(16);
        self.register_session_with(guild_id, user_id, channel_id, &token, &session_id);
        (token, session_id)
    }

    /// Registers a session with given credentials.
    pub fn register_session_with(
        &self,
        guild_id: u64,
        user_id: u64,
        channel_id: u64,
        token: &str,
        session_id: &str,
    ) {
        let session = Arc::new(Session {
            guild_id,
            user_id,
            channel_id,
            session_id: session_id.to_string(),
            token: token.to_string(),
            state: Mutex::new(SessionState {
                conn: None,
                next_seq: 1,
                buffer: Default::default(),
                resumable: false,
                ssrc: None,
                described: false,
                dave: None,
                dave_protocol_version: 0,
            }),
        });
        lock(&self.shared.sessions).insert(guild_id, session);
    }

    fn session(&self, guild_id: u64) -> Result<Arc<Session>, Error> {
        self.shared
            .session(guild_id)
            .ok_or_else(|| Error(format!("no session registered for guild {guild_id}")))
    }

    /// Whether the guild's session has a connection that completed the handshake.
    pub fn is_connected(&self, guild_id: u64) -> bool {
        self.shared.session(guild_id).is_some_and(|s| {
            let st = lock(&s.state);
            st.conn.is_some() && st.described
        })
    }

    /// Waits until `check` holds, re-checking on every event and packet (and every 50 ms).
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&FakeDiscord) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if check(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            let step = deadline.min(tokio::time::Instant::now() + Duration::from_millis(50));
            let _ = tokio::time::timeout_at(step, notified).await;
        }
    }

    /// Waits until the guild's client completed the handshake (Session Description sent).
    pub async fn wait_connected(&self, guild_id: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |d| d.is_connected(guild_id)).await
    }

    /// Waits until the guild's current stream has received `count` packets.
    pub async fn wait_packets(&self, guild_id: u64, count: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |d| d.packets(guild_id) >= count)
            .await
    }

    /// Waits until the bot's media is expected DAVE-encrypted and a listener can decrypt it.
    pub async fn wait_dave_ready(&self, guild_id: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |d| {
            d.dave_status(guild_id).is_some_and(|s| s.media_keys_live)
        })
        .await
    }

    /// Waits for an event matching `pred` (among all logged so far) and returns it.
    pub async fn wait_event(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let mut found = None;
        self.wait_until(timeout, |d| {
            found = lock(&d.shared.events).iter().find(|e| pred(e)).cloned();
            found.is_some()
        })
        .await;
        found
    }

    fn current_stream(&self, guild_id: u64) -> Option<Arc<Mutex<server::Stream>>> {
        let ssrc = *lock(&self.shared.guild_streams).get(&guild_id)?.last()?;
        self.shared.stream(ssrc)
    }

    /// Packets received on the guild's current stream.
    pub fn packets(&self, guild_id: u64) -> u64 {
        self.current_stream(guild_id)
            .map(|s| lock(&s).stats.report.packets)
            .unwrap_or(0)
    }

    /// Report of the guild's current (latest) stream, with PCM and Opus frames.
    pub fn stream_report(&self, guild_id: u64) -> Option<StreamReport> {
        self.current_stream(guild_id)
            .map(|s| lock(&s).stats.snapshot(true))
    }

    /// Reports of every stream the guild had (one per Identify), oldest first; `with_media`
    /// includes PCM and Opus frames.
    pub fn stream_reports(&self, guild_id: u64, with_media: bool) -> Vec<StreamReport> {
        let ssrcs = lock(&self.shared.guild_streams)
            .get(&guild_id)
            .cloned()
            .unwrap_or_default();
        ssrcs
            .into_iter()
            .filter_map(|ssrc| self.shared.stream(ssrc))
            .map(|s| lock(&s).stats.snapshot(with_media))
            .collect()
    }

    fn to_conn(&self, guild_id: u64, out: Out) -> bool {
        let Some(s) = self.shared.session(guild_id) else {
            return false;
        };
        let st = lock(&s.state);
        st.conn.as_ref().is_some_and(|c| c.tx.send(out).is_ok())
    }

    /// Closes the guild's gateway connection with `code` and `reason` (empty: the usual text).
    /// Returns false when no connection is attached.
    pub fn close(&self, guild_id: u64, code: u16, reason: &str) -> bool {
        let reason = if reason.is_empty() {
            wire::close::default_reason(code).to_string()
        } else {
            reason.to_string()
        };
        self.to_conn(guild_id, Out::Close(code, reason))
    }

    /// Ends the guild's gateway connection without a close frame (the client sees 1006).
    pub fn drop_connection(&self, guild_id: u64) -> bool {
        self.to_conn(guild_id, Out::Drop)
    }

    /// Sends any JSON message to the guild's client (`sequenced`: give it a `seq` and keep it
    /// for replay).
    pub fn send_json(&self, guild_id: u64, op: u8, d: Value, sequenced: bool) -> Result<(), Error> {
        self.session(guild_id)?
            .send(ServerMsg::Json { op, d }, sequenced);
        Ok(())
    }

    fn with_dave<T>(
        &self,
        guild_id: u64,
        f: impl FnOnce(&mut dave::DaveCall) -> Result<(T, Vec<dave::ToBot>), String>,
    ) -> Result<T, Error> {
        let session = self.session(guild_id)?;
        let call = lock(&session.state)
            .dave
            .clone()
            .ok_or_else(|| Error(format!("guild {guild_id} has no DAVE session")))?;
        let result = f(&mut lock(&call));
        self.shared.flush_dave_errors(guild_id, &call);
        let (value, msgs) = result.map_err(Error)?;
        self.shared.send_dave(&session, msgs);
        Ok(value)
    }

    /// DAVE state of the guild's call; `None` without DAVE.
    pub fn dave_status(&self, guild_id: u64) -> Option<DaveStatus> {
        let session = self.shared.session(guild_id)?;
        let call = lock(&session.state).dave.clone()?;
        let c = lock(&call);
        Some(DaveStatus {
            protocol_version: c.protocol_version,
            epoch: c.epoch(),
            bot_in_group: c.bot_in_group(),
            listeners: c.listener_ids(),
            media_keys_live: c.media_keys_live,
            pending_transitions: c.pending_transitions(),
        })
    }

    /// Script: another member joins the call mid-stream (op 11, then proposals the bot must
    /// commit; a new epoch). Returns the new listener's user id.
    pub fn dave_add_listener(&self, guild_id: u64) -> Result<u64, Error> {
        self.with_dave(guild_id, |c| c.add_listener())
    }

    /// Script: a listener leaves the call (op 13, then a Remove proposal; a new epoch).
    pub fn dave_remove_listener(&self, guild_id: u64, user_id: u64) -> Result<(), Error> {
        self.with_dave(guild_id, |c| c.remove_listener(user_id).map(|m| ((), m)))
    }

    /// Script: a new group (op 24 with epoch 1); the bot must re-initialise and send a new key
    /// package, and is then brought back into a group with the listeners.
    pub fn dave_reset_epoch(&self, guild_id: u64) -> Result<(), Error> {
        self.with_dave(guild_id, |c| c.reset_epoch().map(|m| ((), m)))
    }

    /// Script: downgrade to transport-only encryption (op 21 with protocol_version 0, then op
    /// 22 once the bot answers op 23). Upgrade back with `dave_reset_epoch`.
    pub fn dave_downgrade(&self, guild_id: u64) -> Result<(), Error> {
        self.with_dave(guild_id, |c| c.downgrade().map(|m| ((), m)))
    }

    /// Script: every listener leaves and the bot is the sole member: op 13 for each, op 24
    /// (epoch 1), then op 21 with transition_id 0 (execute at once).
    pub fn dave_sole_member(&self, guild_id: u64) -> Result<(), Error> {
        self.with_dave(guild_id, |c| c.sole_member().map(|m| ((), m)))
    }

    /// Script: announce a commit (op 29) that cannot be processed; the bot should answer op 31
    /// and send a new key package, after which it is welcomed back.
    pub fn dave_invalid_commit(&self, guild_id: u64) -> Result<(), Error> {
        self.with_dave(guild_id, |c| Ok(((), c.invalid_commit())))
    }

    /// Current runtime behaviour.
    pub fn behaviour(&self) -> Behaviour {
        self.shared.behaviour()
    }

    /// Changes the runtime behaviour (applies to what starts afterwards).
    pub fn set_behaviour(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut lock(&self.shared.behaviour));
    }

    /// Clears every stream's counters and media and the handshake high-water mark.
    pub fn reset_stats(&self) {
        let streams: Vec<_> = lock(&self.shared.streams).values().cloned().collect();
        for s in streams {
            lock(&s).stats.reset();
        }
        self.shared.max_concurrent_handshakes.store(
            self.shared.handshakes_in_flight.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
        self.shared.unknown_ssrc_packets.store(0, Ordering::SeqCst);
        self.shared.non_rtp_packets.store(0, Ordering::SeqCst);
    }

    /// The event log so far.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.shared.events).clone()
    }

    /// Empties the event log.
    pub fn clear_events(&self) {
        lock(&self.shared.events).clear();
    }

    /// Server-wide counters.
    pub fn counters(&self) -> Counters {
        let s = &self.shared;
        Counters {
            connections: s.connections_total.load(Ordering::SeqCst),
            handshakes_in_flight: s.handshakes_in_flight.load(Ordering::SeqCst),
            max_concurrent_handshakes: s.max_concurrent_handshakes.load(Ordering::SeqCst),
            unknown_ssrc_packets: s.unknown_ssrc_packets.load(Ordering::SeqCst),
            non_rtp_packets: s.non_rtp_packets.load(Ordering::SeqCst),
        }
    }
}
