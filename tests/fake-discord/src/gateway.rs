//! Discord's side of one voice gateway connection: Hello, Identify/Resume, Ready, Select
//! Protocol, Session Description, heartbeats, Speaking, the DAVE messages, and scripted
//! closes and drops. One task per connection; TLS and plain WebSocket on the same port.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::crypto::{Mode, TransportCipher};
use crate::dave::DaveCall;
use crate::events::{Closer, EventKind};
use crate::server::{ConnHandle, Out, ServerMsg, Session, Shared, lock};
use crate::wire::{close, op, parse_client_binary_frame};

/// Accepts gateway connections until the listener fails.
pub async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, acceptor: TlsAcceptor) {
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        tokio::spawn(handle(shared.clone(), tcp, acceptor.clone()));
    }
}

async fn handle(shared: Arc<Shared>, tcp: TcpStream, acceptor: TlsAcceptor) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(10), tcp.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    // A TLS ClientHello starts with record type 0x16; anything else is plain HTTP.
    if first[0] == 0x16 {
        if let Ok(tls) = acceptor.accept(tcp).await {
            serve(shared, tls, true).await;
        }
    } else {
        serve(shared, tcp, false).await;
    }
}

/// The `v` query parameter of the upgrade request.
fn gateway_version(uri: &str) -> Option<u8> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("v="))
        .and_then(|v| v.parse().ok())
}

/// Reads an id that may be a JSON string or number.
fn id(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

enum Flow {
    Continue,
    /// Close with this code and reason.
    Close(u16, String),
}

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    version: u8,
    tx: mpsc::UnboundedSender<Out>,
    session: Option<Arc<Session>>,
    in_handshake: bool,
    heartbeat_deadline: Instant,
    heartbeat_timeout: Duration,
}

impl Conn {
    fn guild(&self) -> Option<u64> {
        self.session.as_ref().map(|s| s.guild_id)
    }

    fn end_handshake(&mut self) {
        if self.in_handshake {
            self.in_handshake = false;
            self.shared
                .handshakes_in_flight
                .fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn protocol_error(&self, code: u16, detail: impl Into<String>) -> Flow {
        let detail = detail.into();
        self.shared.event(EventKind::ProtocolError {
            conn: self.id,
            guild_id: self.guild(),
            detail: detail.clone(),
        });
        Flow::Close(code, close::default_reason(code).to_string())
    }

    fn attach(&self, session: &Session) {
        let mut st = lock(&session.state);
        st.conn = Some(ConnHandle {
            id: self.id,
            version: self.version,
            tx: self.tx.clone(),
        });
    }

    fn send_direct(&self, op: u8, d: Value) {
        let _ = self
            .tx
            .send(ServerMsg::Json { op, d }.render(None, self.version));
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return self.protocol_error(close::DECODE_ERROR, "message is not JSON");
        };
        let Some(opcode) = v.get("op").and_then(Value::as_u64) else {
            return self.protocol_error(close::DECODE_ERROR, "message has no op");
        };
        let d = v.get("d").cloned().unwrap_or(Value::Null);
        let opcode = opcode.min(255) as u8;
        match opcode {
            op::HEARTBEAT => self.on_heartbeat(d),
            op::IDENTIFY => self.on_identify(d).await,
            op::RESUME => self.on_resume(d),
            _ if self.session.is_none() => self.protocol_error(
                close::NOT_AUTHENTICATED,
                format!("op {opcode} before Identify"),
            ),
            op::SELECT_PROTOCOL => self.on_select_protocol(d).await,
            op::SPEAKING => self.on_speaking(d),
            op::DAVE_TRANSITION_READY => self.on_transition_ready(d),
            op::DAVE_MLS_INVALID_COMMIT_WELCOME => self.on_invalid_commit(d),
            other => self.protocol_error(close::UNKNOWN_OPCODE, format!("unexpected op {other}")),
        }
    }

    fn on_heartbeat(&mut self, d: Value) -> Flow {
        // v8: {t, seq_ack}; v4: the nonce itself. Either is answered in kind.
        let (ack, seq_ack) = match &d {
            Value::Object(o) => (
                json!({ "t": o.get("t").cloned().unwrap_or(Value::Null) }),
                o.get("seq_ack").and_then(Value::as_i64),
            ),
            other => (other.clone(), None),
        };
        self.heartbeat_deadline = Instant::now() + self.heartbeat_timeout;
        if self.shared.behaviour().ack_heartbeats {
            self.send_direct(op::HEARTBEAT_ACK, ack);
        }
        self.shared.event(EventKind::Heartbeat {
            conn: self.id,
            guild_id: self.guild(),
            seq_ack,
        });
        Flow::Continue
    }

    fn credentials_match(session: &Session, d: &Value) -> bool {
        d.get("session_id").and_then(Value::as_str) == Some(session.session_id.as_str())
            && d.get("token").and_then(Value::as_str) == Some(session.token.as_str())
    }

    async fn on_identify(&mut self, d: Value) -> Flow {
        if self.session.is_some() {
            return self.protocol_error(close::ALREADY_AUTHENTICATED, "second Identify");
        }
        let guild_id = d.get("server_id").and_then(id);
        let session = guild_id.and_then(|g| self.shared.session(g));
        let reject = |this: &Self, code: u16, reason: &str| {
            this.shared.event(EventKind::IdentifyRejected {
                conn: this.id,
                guild_id,
                code,
                reason: reason.to_string(),
            });
            Flow::Close(code, close::default_reason(code).to_string())
        };
        let Some(session) = session else {
            return reject(self, close::AUTHENTICATION_FAILED, "unknown server_id");
        };
        if d.get("user_id").and_then(id) != Some(session.user_id)
            || !Self::credentials_match(&session, &d)
        {
            return reject(
                self,
                close::AUTHENTICATION_FAILED,
                "user_id, session_id or token do not match",
            );
        }
        let max_dave = d.get("max_dave_protocol_version").and_then(Value::as_u64);
        let behaviour = self.shared.behaviour();
        if behaviour.require_dave && max_dave.unwrap_or(0) == 0 {
            return reject(
                self,
                close::DAVE_REQUIRED,
                "max_dave_protocol_version is 0 or absent",
            );
        }
        self.shared.event(EventKind::Identified {
            conn: self.id,
            guild_id: session.guild_id,
            user_id: session.user_id,
            max_dave_protocol_version: max_dave,
        });
        let dave = if behaviour.dave && max_dave.unwrap_or(0) >= 1 {
            match DaveCall::new(
                session.channel_id,
                session.user_id,
                behaviour.dave_listeners,
                behaviour.dave_join,
            ) {
                Ok(c) => Some(Arc::new(std::sync::Mutex::new(c))),
                Err(detail) => {
                    self.shared.event(EventKind::DaveError {
                        guild_id: session.guild_id,
                        detail,
                    });
                    None
                }
            }
        } else {
            None
        };
        let ssrc = self.shared.new_stream(&session, dave.clone());
        {
            let mut st = lock(&session.state);
            st.next_seq = behaviour.initial_seq;
            st.buffer.clear();
            st.resumable = true;
            st.ssrc = Some(ssrc);
            st.described = false;
            st.dave_protocol_version = if dave.is_some() { 1 } else { 0 };
            st.dave = dave;
        }
        self.attach(&session);
        self.session = Some(session.clone());
        if behaviour.ready_delay_ms > 0 {
            sleep(Duration::from_millis(behaviour.ready_delay_ms)).await;
        }
        let udp = self.shared.udp_addr;
        session.send(
            ServerMsg::Json {
                op: op::READY,
                d: json!({
                    "ssrc": ssrc,
                    "ip": udp.ip().to_string(),
                    "port": udp.port(),
                    "modes": behaviour.modes.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                    // Discord's value here is meaningless; clients must use Hello's.
                    "heartbeat_interval": 1,
                }),
            },
            true,
        );
        self.shared.event(EventKind::Ready {
            conn: self.id,
            guild_id: session.guild_id,
            ssrc,
        });
        Flow::Continue
    }

    fn on_resume(&mut self, d: Value) -> Flow {
        if self.session.is_some() {
            return self.protocol_error(close::ALREADY_AUTHENTICATED, "Resume after Identify");
        }
        let guild_id = d.get("server_id").and_then(id);
        let seq_ack = d.get("seq_ack").and_then(Value::as_i64);
        let reject = |this: &Self, reason: &str| {
            this.shared.event(EventKind::ResumeRejected {
                conn: this.id,
                guild_id,
                reason: reason.to_string(),
            });
            Flow::Close(
                close::SESSION_NO_LONGER_VALID,
                close::default_reason(close::SESSION_NO_LONGER_VALID).to_string(),
            )
        };
        let Some(session) = guild_id.and_then(|g| self.shared.session(g)) else {
            return reject(self, "unknown server_id");
        };
        if !Self::credentials_match(&session, &d) {
            return reject(self, "session_id or token do not match");
        }
        if self.shared.behaviour().reject_resumes {
            return reject(self, "resumes are rejected (scripted)");
        }
        if !lock(&session.state).resumable {
            return reject(self, "session is not resumable");
        }
        self.attach(&session);
        self.session = Some(session.clone());
        self.send_direct(op::RESUMED, Value::Null);
        // v8 replays every buffered message after seq_ack.
        let replay: Vec<Out> = {
            let st = lock(&session.state);
            if self.version >= 8 {
                let start = match seq_ack {
                    Some(ack) if ack >= 0 => st
                        .buffer
                        .iter()
                        .position(|(s, _)| *s as i64 == ack)
                        .map(|i| i + 1)
                        .unwrap_or(0),
                    _ => 0,
                };
                st.buffer
                    .iter()
                    .skip(start)
                    .map(|(s, m)| m.render(Some(*s), self.version))
                    .collect()
            } else {
                Vec::new()
            }
        };
        let replayed = replay.len();
        for out in replay {
            let _ = self.tx.send(out);
        }
        self.end_handshake();
        self.shared.event(EventKind::Resumed {
            conn: self.id,
            guild_id: session.guild_id,
            seq_ack,
            replayed,
        });
        Flow::Continue
    }

    async fn on_select_protocol(&mut self, d: Value) -> Flow {
        let session = self.session.clone().expect("identified");
        if d.get("protocol").and_then(Value::as_str) != Some("udp") {
            return self.protocol_error(close::UNKNOWN_PROTOCOL, "protocol is not \"udp\"");
        }
        let data = d.get("data").cloned().unwrap_or(Value::Null);
        let mode_name = data
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let address = data
            .get("address")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let port = data.get("port").and_then(Value::as_u64).unwrap_or(0);
        self.shared.event(EventKind::SelectProtocol {
            conn: self.id,
            guild_id: session.guild_id,
            mode: mode_name.clone(),
            address: address.clone(),
            port,
        });
        let behaviour = self.shared.behaviour();
        let mode = match Mode::from_wire(&mode_name) {
            Some(m) if behaviour.modes.contains(&m) => m,
            _ => {
                return self.protocol_error(
                    close::UNKNOWN_ENCRYPTION_MODE,
                    format!("mode {mode_name:?} was not offered"),
                );
            }
        };
        if behaviour.session_description_delay_ms > 0 {
            sleep(Duration::from_millis(
                behaviour.session_description_delay_ms,
            ))
            .await;
        }
        let key: [u8; 32] = rand::random();
        let (ssrc, dave_version, dave) = {
            let st = lock(&session.state);
            (st.ssrc, st.dave_protocol_version, st.dave.clone())
        };
        if let Some(stream) = ssrc.and_then(|s| self.shared.stream(s)) {
            let mut s = lock(&stream);
            s.cipher = Some(TransportCipher::new(mode, &key));
            s.selected_address = format!("{address}:{port}").parse().ok();
            s.stats.report.mode = Some(mode);
            s.stats.report.dave_protocol_version = dave_version;
        }
        session.send(
            ServerMsg::Json {
                op: op::SESSION_DESCRIPTION,
                d: json!({
                    "mode": mode.as_str(),
                    "secret_key": key.to_vec(),
                    "dave_protocol_version": dave_version,
                    "audio_codec": "opus",
                    "media_session_id": format!("{:032x}", rand::random::<u128>()),
                }),
            },
            true,
        );
        lock(&session.state).described = true;
        self.end_handshake();
        self.shared.event(EventKind::SessionDescription {
            conn: self.id,
            guild_id: session.guild_id,
            mode: mode.as_str().to_string(),
            dave_protocol_version: dave_version,
        });
        if let Some(call) = dave {
            let msgs = lock(&call).start();
            self.shared.send_dave(&session, msgs);
        }
        Flow::Continue
    }

    fn on_speaking(&mut self, d: Value) -> Flow {
        let session = self.session.clone().expect("identified");
        let speaking = d.get("speaking").and_then(Value::as_u64).unwrap_or(0);
        let ssrc = d.get("ssrc").and_then(Value::as_u64).unwrap_or(0) as u32;
        let delay = d.get("delay").and_then(Value::as_u64);
        if let Some(stream) = lock(&session.state)
            .ssrc
            .and_then(|s| self.shared.stream(s))
        {
            let mut s = lock(&stream);
            s.stats.on_speaking(self.shared.now(), speaking);
            s.stats.report.speaking.push(crate::report::SpeakingRecord {
                at: self.shared.now(),
                speaking,
                delay,
                ssrc,
            });
        }
        self.shared.event(EventKind::Speaking {
            conn: self.id,
            guild_id: session.guild_id,
            speaking,
            ssrc,
        });
        Flow::Continue
    }

    fn dave(&self) -> Option<(Arc<Session>, Arc<std::sync::Mutex<DaveCall>>)> {
        let session = self.session.clone()?;
        let call = lock(&session.state).dave.clone()?;
        Some((session, call))
    }

    fn on_transition_ready(&mut self, d: Value) -> Flow {
        let tid = d.get("transition_id").and_then(Value::as_u64).unwrap_or(0) as u16;
        let Some((session, call)) = self.dave() else {
            return Flow::Continue;
        };
        self.shared.event(EventKind::DaveReceived {
            guild_id: session.guild_id,
            op: op::DAVE_TRANSITION_READY,
            transition_id: Some(tid),
            len: 0,
        });
        let result = lock(&call).on_transition_ready(tid);
        self.shared.flush_dave_errors(session.guild_id, &call);
        match result {
            Ok(msgs) => self.shared.send_dave(&session, msgs),
            Err(detail) => self.shared.event(EventKind::DaveError {
                guild_id: session.guild_id,
                detail,
            }),
        }
        Flow::Continue
    }

    fn on_invalid_commit(&mut self, d: Value) -> Flow {
        let tid = d.get("transition_id").and_then(Value::as_u64).unwrap_or(0) as u16;
        if let Some((session, call)) = self.dave() {
            self.shared.event(EventKind::DaveReceived {
                guild_id: session.guild_id,
                op: op::DAVE_MLS_INVALID_COMMIT_WELCOME,
                transition_id: Some(tid),
                len: 0,
            });
            lock(&call).on_invalid_commit_welcome(tid);
        }
        Flow::Continue
    }

    fn on_binary(&mut self, frame: &[u8]) -> Flow {
        let Some((opcode, payload)) = parse_client_binary_frame(frame) else {
            return self.protocol_error(close::DECODE_ERROR, "empty binary message");
        };
        if self.session.is_none() {
            return self.protocol_error(close::NOT_AUTHENTICATED, "binary message before Identify");
        }
        let Some((session, call)) = self.dave() else {
            let guild_id = self.guild().unwrap_or(0);
            self.shared.event(EventKind::DaveError {
                guild_id,
                detail: format!("binary op {opcode} on a session without DAVE"),
            });
            return Flow::Continue;
        };
        self.shared.event(EventKind::DaveReceived {
            guild_id: session.guild_id,
            op: opcode,
            transition_id: None,
            len: payload.len(),
        });
        let result = match opcode {
            op::DAVE_MLS_KEY_PACKAGE => lock(&call).on_key_package(payload),
            op::DAVE_MLS_COMMIT_WELCOME => lock(&call).on_commit_welcome(payload),
            other => {
                return self.protocol_error(
                    close::UNKNOWN_OPCODE,
                    format!("unexpected binary op {other}"),
                );
            }
        };
        self.shared.flush_dave_errors(session.guild_id, &call);
        match result {
            Ok(msgs) => self.shared.send_dave(&session, msgs),
            Err(detail) => self.shared.event(EventKind::DaveError {
                guild_id: session.guild_id,
                detail,
            }),
        }
        Flow::Continue
    }
}

// The handshake callback's error type is fixed by tungstenite.
#[allow(clippy::result_large_err)]
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(shared: Arc<Shared>, stream: S, tls: bool) {
    let mut uri = String::new();
    let callback = |req: &Request, resp: Response| {
        uri = req.uri().to_string();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst) + 1;
    shared.connections_total.fetch_add(1, Ordering::SeqCst);
    let now_in_flight = shared.handshakes_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared
        .max_concurrent_handshakes
        .fetch_max(now_in_flight, Ordering::SeqCst);
    let behaviour = shared.behaviour();
    let version = gateway_version(&uri).unwrap_or(0);
    shared.event(EventKind::Connected {
        conn: id,
        version,
        tls,
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut conn = Conn {
        shared: shared.clone(),
        id,
        version,
        tx,
        session: None,
        in_handshake: true,
        heartbeat_deadline: Instant::now() + behaviour.heartbeat_timeout(),
        heartbeat_timeout: behaviour.heartbeat_timeout(),
    };

    let mut outcome: Option<(Closer, Option<u16>, String)> = None;
    if version < 4 {
        let reason = "gateway version must be 4 or later (?v=)".to_string();
        outcome = Some((Closer::Server, Some(close::BAD_REQUEST), reason));
    } else {
        if behaviour.hello_delay_ms > 0 {
            sleep(Duration::from_millis(behaviour.hello_delay_ms)).await;
        }
        let mut hello = json!({ "heartbeat_interval": behaviour.heartbeat_interval_ms });
        if version >= 8 {
            hello["v"] = json!(version);
        }
        conn.send_direct(op::HELLO, hello);
        conn.heartbeat_deadline = Instant::now() + conn.heartbeat_timeout;
    }

    while outcome.is_none() {
        tokio::select! {
            msg = ws.next() => {
                let flow = match msg {
                    Some(Ok(Message::Text(t))) => conn.on_text(t.as_str()).await,
                    Some(Ok(Message::Binary(b))) => conn.on_binary(&b),
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                            .unwrap_or((None, String::new()));
                        // Let tungstenite finish the closing handshake.
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.next()).await;
                        outcome = Some((Closer::Client, code, reason));
                        Flow::Continue
                    }
                    Some(Ok(_)) => Flow::Continue,
                    Some(Err(_)) | None => {
                        outcome = Some((Closer::ClientDropped, None, String::new()));
                        Flow::Continue
                    }
                };
                if let Flow::Close(code, reason) = flow {
                    outcome = Some((Closer::Server, Some(code), reason));
                }
            }
            out = rx.recv() => {
                match out {
                    Some(Out::Text(t)) => { let _ = ws.send(Message::text(t)).await; }
                    Some(Out::Binary(b)) => { let _ = ws.send(Message::binary(b)).await; }
                    Some(Out::Close(code, reason)) => {
                        outcome = Some((Closer::Server, Some(code), reason));
                    }
                    Some(Out::Drop) | None => {
                        outcome = Some((Closer::ServerDropped, None, String::new()));
                    }
                }
            }
            () = sleep_until(conn.heartbeat_deadline) => {
                let code = close::SESSION_TIMEOUT;
                outcome = Some((Closer::Server, Some(code), "no heartbeat in time".into()));
            }
        }
    }
    let (by, code, reason) = outcome.expect("loop ends with an outcome");
    // Settle the session before the client can see the close and try to resume.
    conn.end_handshake();
    if let Some(session) = &conn.session {
        let mut st = lock(&session.state);
        if st.conn.as_ref().is_some_and(|c| c.id == conn.id) {
            st.conn = None;
        }
        if by == Closer::Server && code.is_some_and(|c| !close::leaves_session_resumable(c)) {
            st.resumable = false;
        }
    }
    shared.event(EventKind::Closed {
        conn: conn.id,
        guild_id: conn.guild(),
        code,
        reason: reason.clone(),
        by,
    });
    match (by, code) {
        (Closer::Server, Some(code)) => {
            let _ = send_close(&mut ws, code, &reason).await;
        }
        // No close frame, no TLS close_notify: the client sees an abnormal closure.
        (Closer::ServerDropped, _) => drop(ws),
        _ => {}
    }
}

async fn send_close<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    code: u16,
    reason: &str,
) -> Result<(), ()> {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    };
    ws.send(Message::Close(Some(frame))).await.map_err(|_| ())?;
    // Wait briefly for the client's close reply so the frame is flushed and acknowledged.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(_) = m {
                break;
            }
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_query() {
        assert_eq!(gateway_version("/?v=8"), Some(8));
        assert_eq!(gateway_version("/?encoding=json&v=4"), Some(4));
        assert_eq!(gateway_version("/"), None);
        assert_eq!(id(&json!("123")), Some(123));
        assert_eq!(id(&json!(5)), Some(5));
        assert_eq!(id(&json!(null)), None);
    }
}
