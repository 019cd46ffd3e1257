//! The client WebSocket `/v4/websocket` (spec §4): handshake checks, `ready`, resume, `stats`
//! every 60 s, and the writer that drains a session's outbox into the socket.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::middleware::password_matches;
use super::{ApiError, AppState};
use crate::protocol::messages::OutgoingMessage;
use crate::session::{Session, WsOut};

/// Interval between `stats` messages.
const STATS_INTERVAL: Duration = Duration::from_secs(60);

/// `WebSocketUpgrade` rejections become Lavalink error bodies via the error middleware; we
/// check auth and headers before looking at the upgrade itself.
pub async fn upgrade(
    State(node): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if password_matches(&node, headers.get("authorization").map(|v| v.as_bytes())) != Some(true) {
        tracing::warn!("WebSocket handshake with a missing or wrong password");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let user_id = headers
        .get("user-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|id| *id != 0);
    let Some(user_id) = user_id else {
        return ApiError::bad_request("Missing or invalid User-Id header").into_response();
    };
    let client_name = headers
        .get("client-name")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if client_name.is_empty() {
        tracing::warn!("WebSocket client did not send a Client-Name header");
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return ApiError::bad_request(rejection.body_text()).into_response(),
    };
    let requested = headers
        .get("session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    let (tx, rx) = unbounded_channel();
    let (session, resumed, queued) =
        match requested.and_then(|id| node.sessions.resume(&id, tx.clone())) {
            Some((session, queued)) => (session, true, queued),
            None => {
                let session = node
                    .sessions
                    .create(user_id, client_name.clone(), tx.clone());
                spawn_stats(node.clone(), session.clone());
                (session, false, Vec::new())
            }
        };
    tracing::info!(session = %session.id, client = %client_name, resumed, "client connected");

    let mut res =
        ws.on_upgrade(move |socket| serve(node, session, socket, tx, rx, resumed, queued));
    res.headers_mut().insert(
        "Session-Resumed",
        HeaderValue::from_static(if resumed { "true" } else { "false" }),
    );
    res
}

async fn serve(
    node: AppState,
    session: Arc<Session>,
    socket: WebSocket,
    tx: tokio::sync::mpsc::UnboundedSender<WsOut>,
    mut rx: UnboundedReceiver<WsOut>,
    resumed: bool,
    queued: Vec<String>,
) {
    let (mut sink, mut stream) = socket.split();

    // `ready` first, then (on resume) the queued messages, then a playerUpdate per player.
    let ready = OutgoingMessage::Ready {
        resumed,
        session_id: session.id.clone(),
    };
    let mut first = vec![serde_json::to_string(&ready).unwrap_or_default()];
    first.extend(queued);
    for text in first {
        if sink.send(Message::Text(text.into())).await.is_err() {
            node.sessions.disconnected(&session, &tx);
            return;
        }
    }
    if resumed {
        for p in session.players() {
            p.player_update().await;
        }
    }

    // Stats right away on every (re)connect; the periodic ones come from the session's task.
    session.outbox.send(&stats_message(&node, &session));

    let writer = async {
        while let Some(out) = rx.recv().await {
            match out {
                WsOut::Text(text) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                WsOut::Close(code) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: "".into(),
                        })))
                        .await;
                    break;
                }
            }
        }
    };
    let reader = async {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(Message::Text(t)) => {
                    tracing::debug!(session = %session.id, "ignoring client message: {}", t.as_str())
                }
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    tracing::info!(session = %session.id, "client disconnected");
    node.sessions.disconnected(&session, &tx);
}

fn stats_message(node: &AppState, session: &Session) -> OutgoingMessage {
    OutgoingMessage::Stats {
        stats: Box::new(node.stats()),
        frame_stats: node.frame_stats(session),
    }
}

/// A session's `stats` every minute for as long as it lives (queued while it is paused).
fn spawn_stats(node: AppState, session: Arc<Session>) {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + STATS_INTERVAL, STATS_INTERVAL);
        loop {
            tick.tick().await;
            if session.is_destroyed() {
                break;
            }
            session.outbox.send(&stats_message(&node, &session));
        }
    });
}
