//! One voice gateway WebSocket, from opening to its close: the v8 handshake (Identify or
//! Resume), UDP IP discovery, Select Protocol, Session Description, heartbeats with
//! `seq_ack`, speaking updates for the pacer, and the DAVE messages.
//!
//! [`run`] returns how the socket ended; the connection task (see `connection`) decides from
//! that whether to resume, reconnect or report the close.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::connection::{Command, ConnShared};
use super::context::VoiceContext;
use super::crypto::{EncryptionMode, TransportCipher};
use super::dave::{DaveDriver, Outgoing};
use super::discovery::{self, DiscoveredAddress, IP_DISCOVERY_LEN};
use super::metrics::{ConnectionState, HandshakePermit, StateGauge};
use super::payload::{self, Heartbeat, Identify, ServerEvent, ServerMessage, Snowflake, op};
use super::policy::ABNORMAL_CLOSURE;
use super::transport::{Transport, VoiceSlot};
use super::{VoiceEvent, VoiceServerInfo};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How to open the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Identify,
    Resume,
}

/// A ready session: what survives a dropped socket and lets us resume.
pub(crate) struct Session {
    pub transport: Arc<Transport>,
    pub speaking_rx: mpsc::UnboundedReceiver<u32>,
    /// Whether our last op 5 said `speaking: 1`.
    pub announced: bool,
}

/// The connection's protocol state across sockets.
pub(crate) struct ConnState {
    pub session: Option<Session>,
    pub seq_ack: i64,
    pub dave: DaveDriver,
}

impl ConnState {
    pub fn new(info: &VoiceServerInfo) -> Self {
        ConnState {
            session: None,
            seq_ack: -1,
            dave: DaveDriver::new(info.user_id, info.channel_id),
        }
    }
}

/// Everything one run needs from the connection task.
pub(crate) struct Link<'a> {
    pub ctx: &'a VoiceContext,
    pub info: &'a VoiceServerInfo,
    pub connection_id: u64,
    pub slot: &'a VoiceSlot,
    pub shared: &'a ConnShared,
    pub events: &'a mpsc::UnboundedSender<VoiceEvent>,
    pub commands: &'a mut mpsc::UnboundedReceiver<Command>,
    pub gauge: &'a mut StateGauge,
}

/// How a socket closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseInfo {
    pub code: u16,
    pub reason: String,
    pub by_remote: bool,
    /// Not worth retrying whatever the code (e.g. no encryption mode we support).
    pub fatal: bool,
    /// How long the session had been ready when it closed (None: it never got ready).
    pub ready_for: Option<Duration>,
}

/// How a run ended.
pub(crate) enum End {
    /// The player asked to disconnect (or dropped its handle).
    Disconnect {
        ws: Option<Box<Ws>>,
        done: Option<oneshot::Sender<()>>,
    },
    Closed(CloseInfo),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    AwaitReady,
    AwaitSession,
    AwaitResumed,
    Ready,
}

/// What woke the loop.
enum Wake {
    Command(Option<Command>),
    Socket(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Speaking(Option<u32>),
    Heartbeat,
    HandshakeTimeout,
}

/// The UDP side between Ready and Session Description.
struct PendingUdp {
    socket: std::net::UdpSocket,
    ssrc: u32,
    mode: EncryptionMode,
}

#[derive(Default)]
struct HeartbeatState {
    interval: Option<Duration>,
    next: Option<Instant>,
    /// Nonce and send time of the last heartbeat sent.
    last: Option<(u64, Instant)>,
    /// Since when heartbeats have gone unanswered.
    unacked_since: Option<Instant>,
}

fn local_close(code: u16, reason: impl Into<String>) -> End {
    End::Closed(CloseInfo {
        code,
        reason: reason.into(),
        by_remote: false,
        fatal: false,
        ready_for: None,
    })
}

fn fatal_close(code: u16, reason: impl Into<String>) -> End {
    End::Closed(CloseInfo {
        code,
        reason: reason.into(),
        by_remote: false,
        fatal: true,
        ready_for: None,
    })
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs one socket. `permit` is the handshake gate permit; it is released when the session
/// becomes ready (or when this returns).
pub(crate) async fn run(
    link: &mut Link<'_>,
    st: &mut ConnState,
    mode: Mode,
    permit: HandshakePermit,
) -> End {
    let mut permit = Some(permit);
    let deadline = Instant::now() + link.ctx.settings.handshake_timeout;
    let Some(url) = gateway_url(&link.info.endpoint) else {
        // A malformed endpoint will not get better by retrying.
        return fatal_close(
            ABNORMAL_CLOSURE,
            format!(
                "bad voice endpoint {:?}: expected host[:port]",
                link.info.endpoint
            ),
        );
    };
    let connector = Connector::Rustls(link.ctx.tls.clone());
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, true, Some(connector));
    let mut ws = tokio::select! {
        biased;
        cmd = link.commands.recv() => {
            return End::Disconnect { ws: None, done: cmd.map(Command::into_done) };
        }
        r = timeout_at(deadline, connect) => match r {
            Ok(Ok((ws, _))) => Box::new(ws),
            Ok(Err(e)) => return local_close(ABNORMAL_CLOSURE, format!("voice gateway connect failed: {e}")),
            Err(_) => return local_close(ABNORMAL_CLOSURE, "voice gateway connect timed out"),
        }
    };

    let mut phase = Phase::AwaitHello;
    let mut hb = HeartbeatState::default();
    let mut udp: Option<PendingUdp> = None;
    let mut queued: Vec<ServerEvent> = Vec::new();
    let mut ready_since: Option<Instant> = None;
    let far = || Instant::now() + Duration::from_secs(86_400);

    loop {
        let hb_at = hb.next.unwrap_or_else(far);
        let hs_at = if phase == Phase::Ready {
            far()
        } else {
            deadline
        };
        let listen_speaking = phase == Phase::Ready && st.session.is_some();
        let wake = tokio::select! {
            biased;
            c = link.commands.recv() => Wake::Command(c),
            m = ws.next() => Wake::Socket(m),
            v = recv_speaking(&mut st.session), if listen_speaking => Wake::Speaking(v),
            _ = sleep_until(hb_at) => Wake::Heartbeat,
            _ = sleep_until(hs_at) => Wake::HandshakeTimeout,
        };
        let ready_for = ready_since.map(|t| t.elapsed());
        let broken = |e: &dyn std::fmt::Display| {
            End::Closed(CloseInfo {
                code: ABNORMAL_CLOSURE,
                reason: e.to_string(),
                by_remote: true,
                fatal: false,
                ready_for,
            })
        };
        match wake {
            Wake::Command(c) => {
                return End::Disconnect {
                    ws: Some(ws),
                    done: c.map(Command::into_done),
                };
            }
            Wake::HandshakeTimeout => {
                return local_close(ABNORMAL_CLOSURE, "voice handshake timed out");
            }
            Wake::Heartbeat => {
                let interval = hb.interval.unwrap_or(Duration::from_secs(5));
                if let Some(since) = hb.unacked_since
                    && since.elapsed() >= interval * 2
                {
                    return End::Closed(CloseInfo {
                        code: ABNORMAL_CLOSURE,
                        reason: "no heartbeat ACK".into(),
                        by_remote: false,
                        fatal: false,
                        ready_for,
                    });
                }
                let t = unix_ms();
                let msg = payload::to_json(
                    op::HEARTBEAT,
                    Heartbeat {
                        t,
                        seq_ack: st.seq_ack,
                    },
                );
                if let Err(e) = ws.send(Message::text(msg)).await {
                    return broken(&e);
                }
                let now = Instant::now();
                hb.last = Some((t, now));
                hb.unacked_since.get_or_insert(now);
                hb.next = Some(now + interval);
            }
            Wake::Speaking(Some(mut value)) => {
                let session = st.session.as_mut().expect("listening implies a session");
                while let Ok(v) = session.speaking_rx.try_recv() {
                    value = v;
                }
                if let Err(e) = apply_speaking(Some(&mut ws), session, value).await {
                    return broken(&e);
                }
            }
            Wake::Speaking(None) => {}
            Wake::Socket(None) => return broken(&"voice gateway connection lost"),
            Wake::Socket(Some(Err(e))) => return broken(&e),
            Wake::Socket(Some(Ok(message))) => {
                let parsed = match message {
                    Message::Text(t) => payload::parse_text(&t),
                    Message::Binary(b) => payload::parse_binary(&b),
                    Message::Close(frame) => {
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        return End::Closed(CloseInfo {
                            code,
                            reason,
                            by_remote: true,
                            fatal: false,
                            ready_for,
                        });
                    }
                    _ => continue,
                };
                let msg: ServerMessage = match parsed {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(guild_id = link.info.guild_id, error = %e, "ignoring undecodable voice gateway message");
                        continue;
                    }
                };
                if let Some(seq) = msg.seq {
                    st.seq_ack = seq;
                }
                let mut out: Vec<Outgoing> = Vec::new();
                match msg.event {
                    ServerEvent::Hello(h) if phase == Phase::AwaitHello => {
                        let ms = h.heartbeat_interval.clamp(100.0, 120_000.0);
                        hb.interval = Some(Duration::from_secs_f64(ms / 1000.0));
                        let info = link.info;
                        let first = match mode {
                            Mode::Identify => {
                                phase = Phase::AwaitReady;
                                payload::to_json(
                                    op::IDENTIFY,
                                    Identify {
                                        server_id: Snowflake(info.guild_id),
                                        user_id: Snowflake(info.user_id),
                                        session_id: &info.session_id,
                                        token: &info.token,
                                        max_dave_protocol_version: link
                                            .ctx
                                            .settings
                                            .max_dave_protocol_version,
                                    },
                                )
                            }
                            Mode::Resume => {
                                phase = Phase::AwaitResumed;
                                payload::to_json(
                                    op::RESUME,
                                    payload::Resume {
                                        server_id: Snowflake(info.guild_id),
                                        session_id: &info.session_id,
                                        token: &info.token,
                                        seq_ack: st.seq_ack,
                                    },
                                )
                            }
                        };
                        out.push(Outgoing::Text(first));
                        // First heartbeat right after identifying, so `ping` is known early.
                        hb.next = Some(Instant::now());
                    }
                    ServerEvent::Ready(r) if phase == Phase::AwaitReady => {
                        let Some(enc) = EncryptionMode::choose(&r.modes) else {
                            return fatal_close(
                                4016,
                                format!("no supported encryption mode offered: {:?}", r.modes),
                            );
                        };
                        let found =
                            match timeout_at(deadline, discover(&r.ip, r.port, r.ssrc)).await {
                                Ok(Ok(found)) => found,
                                Ok(Err(e)) => {
                                    return local_close(
                                        ABNORMAL_CLOSURE,
                                        format!("IP discovery failed: {e}"),
                                    );
                                }
                                Err(_) => {
                                    return local_close(ABNORMAL_CLOSURE, "IP discovery timed out");
                                }
                            };
                        let (socket, addr) = found;
                        let address = addr.ip.to_string();
                        out.push(Outgoing::Text(payload::to_json(
                            op::SELECT_PROTOCOL,
                            payload::SelectProtocol {
                                protocol: "udp",
                                data: payload::SelectProtocolData {
                                    address: &address,
                                    port: addr.port,
                                    mode: enc.as_str(),
                                },
                            },
                        )));
                        udp = Some(PendingUdp {
                            socket,
                            ssrc: r.ssrc,
                            mode: enc,
                        });
                        phase = Phase::AwaitSession;
                    }
                    ServerEvent::SessionDescription(sd) if phase == Phase::AwaitSession => {
                        let pending = udp.take().expect("AwaitSession implies UDP is ready");
                        let enc = EncryptionMode::from_name(&sd.mode).unwrap_or(pending.mode);
                        let cipher = match TransportCipher::new(enc, &sd.secret_key) {
                            Ok(c) => c,
                            Err(e) => {
                                return fatal_close(
                                    4016,
                                    format!("unusable session description: {e}"),
                                );
                            }
                        };
                        let (cell, dave_out) =
                            st.dave.on_session_description(sd.dave_protocol_version);
                        out.extend(dave_out);
                        let (transport, speaking_rx) = Transport::new(
                            link.connection_id,
                            pending.socket,
                            pending.ssrc,
                            cipher,
                            cell,
                        );
                        if !link.slot.install(transport.clone()) {
                            // A newer connection owns this player's slot now.
                            return End::Disconnect {
                                ws: Some(ws),
                                done: None,
                            };
                        }
                        st.session = Some(Session {
                            transport,
                            speaking_rx,
                            announced: false,
                        });
                        phase = Phase::Ready;
                        ready_since = Some(Instant::now());
                        drop(permit.take());
                        became_ready(link, mode, enc, sd.dave_protocol_version);
                        for ev in std::mem::take(&mut queued) {
                            if let Some(s) = st.session.as_ref() {
                                out.extend(st.dave.handle(&s.transport.dave, &ev));
                            }
                        }
                    }
                    ServerEvent::Resumed if phase == Phase::AwaitResumed => {
                        phase = Phase::Ready;
                        ready_since = Some(Instant::now());
                        drop(permit.take());
                        if let Some(s) = st.session.as_ref() {
                            let enc = s.transport.cipher.mode();
                            became_ready(link, mode, enc, 0);
                            if s.announced {
                                out.push(Outgoing::Text(speaking_json(s.transport.ssrc, true)));
                            }
                        }
                    }
                    ServerEvent::HeartbeatAck(ack) => {
                        if let Some((nonce, sent)) = hb.last
                            && nonce == ack.t
                        {
                            let rtt = sent.elapsed().as_millis() as i64;
                            link.shared.ping_ms.store(rtt, Ordering::Relaxed);
                            hb.unacked_since = None;
                        }
                    }
                    ev if DaveDriver::handles(&ev) => match st.session.as_ref() {
                        Some(s) => out.extend(st.dave.handle(&s.transport.dave, &ev)),
                        None => {
                            st.dave.track_users(&ev);
                            if !matches!(
                                ev,
                                ServerEvent::ClientsConnect(_) | ServerEvent::ClientDisconnect(_)
                            ) {
                                queued.push(ev);
                            }
                        }
                    },
                    other => {
                        tracing::trace!(guild_id = link.info.guild_id, event = ?other, "voice gateway message ignored");
                    }
                }
                for o in out {
                    let m = match o {
                        Outgoing::Text(t) => Message::text(t),
                        Outgoing::Binary(b) => Message::binary(b),
                    };
                    if let Err(e) = ws.send(m).await {
                        return broken(&e);
                    }
                }
            }
        }
    }
}

/// `wss://{endpoint}/?v=8`, if the endpoint is a plain `host[:port]`.
fn gateway_url(endpoint: &str) -> Option<String> {
    use tokio_tungstenite::tungstenite::http::Uri;
    if endpoint.is_empty() || endpoint.contains(['/', '?', '#', '@']) {
        return None;
    }
    let url = format!("wss://{endpoint}/?v=8");
    let uri: Uri = url.parse().ok()?;
    uri.host().filter(|h| !h.is_empty())?;
    Some(url)
}

fn became_ready(link: &mut Link<'_>, mode: Mode, enc: EncryptionMode, dave_version: u16) {
    link.shared.connected.store(true, Ordering::Release);
    link.gauge.set(ConnectionState::Ready);
    let _ = link.events.send(VoiceEvent::Ready);
    match mode {
        Mode::Identify => tracing::info!(
            guild_id = link.info.guild_id,
            endpoint = %link.info.endpoint,
            mode = enc.as_str(),
            dave_protocol_version = dave_version,
            "voice connected"
        ),
        Mode::Resume => tracing::info!(guild_id = link.info.guild_id, "voice resumed"),
    }
}

async fn recv_speaking(session: &mut Option<Session>) -> Option<u32> {
    match session {
        Some(s) => s.speaking_rx.recv().await,
        None => std::future::pending().await,
    }
}

fn speaking_json(ssrc: u32, on: bool) -> String {
    payload::to_json(
        op::SPEAKING,
        payload::Speaking {
            speaking: u8::from(on),
            delay: 0,
            ssrc,
        },
    )
}

/// Acts on the pacer's speaking request `value` (`(n << 1) | on`): sends op 5 if the state
/// changes, then acknowledges the request so the pacer may send.
pub(crate) async fn apply_speaking(
    ws: Option<&mut Ws>,
    session: &mut Session,
    value: u32,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let on = value & 1 == 1;
    if on != session.announced {
        if let Some(ws) = ws {
            ws.send(Message::text(speaking_json(session.transport.ssrc, on)))
                .await?;
        } else if on {
            // Nowhere to announce it; do not let the pacer send.
            return Ok(());
        }
        session.announced = on;
    }
    session
        .transport
        .speaking_ack
        .store(value, Ordering::Release);
    Ok(())
}

/// Sends op 5 `speaking: 0` if needed and closes the socket with 1000.
pub(crate) async fn close_gracefully(mut ws: Box<Ws>, session: Option<&mut Session>) {
    if let Some(s) = session
        && s.announced
    {
        let _ = ws
            .send(Message::text(speaking_json(s.transport.ssrc, false)))
            .await;
        s.announced = false;
    }
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let until = Instant::now() + Duration::from_secs(1);
    if timeout_at(until, ws.send(Message::Close(Some(frame))))
        .await
        .is_ok()
    {
        // Wait (briefly) for the server's close frame to finish the handshake.
        while let Ok(Some(Ok(_))) = timeout_at(until, ws.next()).await {}
    }
}

/// UDP IP discovery against the voice server at `ip:port`; returns the connected socket
/// (non-blocking, ready for the pacer) and our external address.
async fn discover(
    ip: &str,
    port: u16,
    ssrc: u32,
) -> std::io::Result<(std::net::UdpSocket, DiscoveredAddress)> {
    let server: SocketAddr = match ip.parse::<IpAddr>() {
        Ok(addr) => SocketAddr::new(addr, port),
        Err(_) => tokio::net::lookup_host((ip, port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("voice server {ip} did not resolve")))?,
    };
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    let request = discovery::request(ssrc);
    let mut buf = [0u8; 512];
    for _ in 0..5 {
        socket.send(&request).await?;
        let wait = Instant::now() + Duration::from_millis(800);
        loop {
            match timeout_at(wait, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(e),
                Ok(Ok(n)) if n == IP_DISCOVERY_LEN => {
                    if let Ok(found) = discovery::parse_response(&buf[..n], ssrc) {
                        let std_socket = socket.into_std()?;
                        return Ok((std_socket, found));
                    }
                }
                Ok(Ok(_)) => {}
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no IP discovery response",
    ))
}

#[cfg(test)]
mod tests {
    use super::gateway_url;

    #[test]
    fn endpoint_becomes_a_v8_url_and_junk_is_refused() {
        assert_eq!(
            gateway_url("c-ams08.discord.media").as_deref(),
            Some("wss://c-ams08.discord.media/?v=8")
        );
        assert_eq!(
            gateway_url("127.0.0.1:4443").as_deref(),
            Some("wss://127.0.0.1:4443/?v=8")
        );
        for bad in [
            "",
            "wss://x.example",
            "x.example/path",
            "bad host",
            "user@x",
            ":443",
        ] {
            assert_eq!(gateway_url(bad), None, "{bad:?}");
        }
    }
}
