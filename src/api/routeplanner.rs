//! `/v4/routeplanner/*` (spec §3.12). Without `ratelimit.ipBlocks` the planner is disabled.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiError;

const DISABLED: &str = "Can't access disabled route planner";

pub async fn status() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub async fn free_address() -> ApiError {
    ApiError::internal(DISABLED)
}

pub async fn free_all() -> ApiError {
    ApiError::internal(DISABLED)
}
