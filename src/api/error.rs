//! Lavalink's error body (spec §1.5) as a type that renders itself.
//!
//! Handlers return `Result<_, ApiError>`; a middleware fills in `path` and, when the request asked
//! for `?trace=true`, the `trace` text. Auth rejections (401/403) are not `ApiError`s: they have an
//! empty body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A REST error: status and message. Rendered as Lavalink's error JSON.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Diagnostic detail for `trace` (defaults to the message).
    pub detail: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            detail: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// The JSON body. `path` and `trace` are completed by [`super::middleware::error_body`].
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub timestamp: i64,
    pub status: u16,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    pub message: String,
    pub path: String,
}

/// Marker stored in response extensions so the middleware can complete the body.
#[derive(Debug, Clone)]
pub struct PendingError(pub ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The body is written by the middleware, which knows the path and query.
        let mut res = self.status.into_response();
        res.extensions_mut().insert(PendingError(self));
        res
    }
}

/// Renders the body for `err` at `path`.
pub fn render(err: &ApiError, path: &str, trace: bool) -> Response {
    let body = ErrorBody {
        timestamp: crate::util::now_millis(),
        status: err.status.as_u16(),
        error: err
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .to_string(),
        trace: trace.then(|| {
            let detail = err.detail.as_deref().unwrap_or(&err.message);
            format!("acoustic::api::ApiError: {detail}\n\tat {path}\n")
        }),
        message: err.message.clone(),
        path: path.to_string(),
    };
    (err.status, axum::Json(body)).into_response()
}
