//! The HTTP face of the node: REST routes, the client WebSocket, auth, and Lavalink's error
//! bodies (spec §1, §3, §4). Knows no audio: it talks to sessions and players.

mod error;
mod info;
mod middleware;
mod players;
mod routeplanner;
mod sessions;
mod tracks;
mod websocket;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};

pub use error::ApiError;

use crate::node::Node;

/// Shared state of every handler.
pub type AppState = Arc<Node>;

/// Largest request body accepted (a `/decodetracks` of a few thousand tracks fits).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Builds the router with every route and middleware.
pub fn router(node: AppState) -> Router {
    let rest = Router::new()
        .route("/version", get(info::version))
        .route("/v4/info", get(info::info))
        .route("/v4/stats", get(info::stats))
        .route("/v4/loadtracks", get(tracks::load_tracks))
        .route("/v4/decodetrack", get(tracks::decode_track))
        .route("/v4/decodetracks", post(tracks::decode_tracks))
        .route("/v4/sessions/{session_id}", patch(sessions::update_session))
        .route("/v4/sessions/{session_id}/players", get(players::list))
        .route(
            "/v4/sessions/{session_id}/players/{guild_id}",
            get(players::get)
                .patch(players::update)
                .delete(players::destroy),
        )
        .route("/v4/routeplanner/status", get(routeplanner::status))
        .route(
            "/v4/routeplanner/free/address",
            post(routeplanner::free_address),
        )
        .route("/v4/routeplanner/free/all", post(routeplanner::free_all))
        .route("/", get(info::legacy_root))
        .route("/v3/websocket", get(info::legacy_root))
        .fallback(info::not_found)
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            middleware::require_password,
        ));

    let mut open = Router::new().route("/v4/websocket", get(websocket::upgrade));
    if node.config.metrics_enabled {
        let path = node.config.metrics_endpoint.clone();
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        open = open.route(&path, get(info::metrics));
    }
    open.merge(rest)
        .layer(axum::middleware::from_fn(middleware::error_body))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            middleware::log_request,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(
            middleware::api_version_header,
        ))
        .with_state(node)
}
