//! `PATCH /v4/sessions/{sessionId}`: resuming and its timeout (spec §3.11).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};

use super::{ApiError, AppState};
use crate::protocol::player::{SessionInfo, UpdateSession};
use crate::session::Session;

/// Looks up an open session or answers Lavalink's 404.
pub fn open_session(node: &AppState, id: &str) -> Result<Arc<Session>, ApiError> {
    node.sessions
        .get_open(id)
        .ok_or_else(|| ApiError::not_found("Session not found"))
}

/// Parses a JSON body, answering 400 with serde's reason on failure.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))
}

pub async fn update_session(
    State(node): State<AppState>,
    Path(session_id): Path<String>,
    body: Bytes,
) -> Result<Json<SessionInfo>, ApiError> {
    let session = open_session(&node, &session_id)?;
    let update: UpdateSession = parse_body(&body)?;
    if let Some(timeout) = update.timeout {
        if timeout < 0 {
            return Err(ApiError::bad_request("timeout must be at least 0 seconds"));
        }
        session.set_timeout(timeout);
    }
    if let Some(resuming) = update.resuming {
        session.set_resuming(resuming);
    }
    Ok(Json(session.info()))
}
