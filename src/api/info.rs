//! `/version`, `/v4/info`, `/v4/stats`, and the legacy no-op routes.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::header;
use axum::response::IntoResponse;

use super::{ApiError, AppState};
use crate::protocol::info::Info;
use crate::protocol::stats::Stats;

pub async fn version() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
        crate::node::LAVALINK_VERSION,
    )
}

pub async fn info(State(node): State<AppState>) -> Json<Info> {
    let mut info = node.info.clone();
    info.source_managers = node
        .players
        .sources
        .names()
        .await
        .into_iter()
        .map(String::from)
        .collect();
    Json(info)
}

pub async fn stats(State(node): State<AppState>) -> Json<Stats> {
    Json(node.stats())
}

/// `GET /` and `GET /v3/websocket`: kept as no-ops that point clients at v4.
pub async fn legacy_root(OriginalUri(uri): OriginalUri) -> impl IntoResponse {
    tracing::warn!(path = %uri.path(), "this is a Lavalink v4 node: use /v4/websocket and the /v4 REST routes");
    axum::http::StatusCode::OK
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("Not Found")
}

/// Prometheus text exposition (unauthenticated, only when enabled).
pub async fn metrics(State(node): State<AppState>) -> impl IntoResponse {
    let body = node.players.metrics.render(&node);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}
