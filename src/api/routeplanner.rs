//! `/v4/routeplanner/*` (spec §3.12): status, free one address, free all. Without
//! `ratelimit.ipBlocks` the planner is disabled (204 / 500 as the reference answers).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::sessions::parse_body;
use super::{ApiError, AppState};
use crate::routeplanner::RoutePlanner;

const DISABLED: &str = "Can't access disabled route planner";

fn planner(node: &AppState) -> Result<&Arc<RoutePlanner>, ApiError> {
    node.route_planner
        .as_ref()
        .ok_or_else(|| ApiError::internal(DISABLED))
}

pub async fn status(State(node): State<AppState>) -> Response {
    match &node.route_planner {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(p) => Json(p.status()).into_response(),
    }
}

#[derive(Deserialize)]
struct FreeAddress {
    address: String,
}

pub async fn free_address(
    State(node): State<AppState>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let planner = planner(&node)?;
    let req: FreeAddress = parse_body(&body)?;
    let addr = req
        .address
        .trim()
        .trim_start_matches('/')
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Invalid address: {}", req.address)))?;
    planner.free_address(addr);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn free_all(State(node): State<AppState>) -> Result<StatusCode, ApiError> {
    planner(&node)?.free_all();
    Ok(StatusCode::NO_CONTENT)
}
