//! Cross-cutting HTTP concerns: the `Lavalink-Api-Version` header, the password check,
//! request logging, and turning every error response into Lavalink's error body.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{ApiError, PendingError, render};

/// Adds `Lavalink-Api-Version: 4` to every response.
pub async fn api_version_header(mut res: Response) -> Response {
    res.headers_mut()
        .insert("Lavalink-Api-Version", HeaderValue::from_static("4"));
    res
}

/// Compares the `Authorization` header with the password in constant time.
pub fn password_matches(node: &AppState, header: Option<&[u8]>) -> Option<bool> {
    let header = header?;
    Some(bool::from(header.ct_eq(node.config.password.as_bytes())))
}

/// REST auth: absent → 401, wrong → 403, both with an empty body.
pub async fn require_password(State(node): State<AppState>, req: Request, next: Next) -> Response {
    match password_matches(
        &node,
        req.headers().get("authorization").map(|v| v.as_bytes()),
    ) {
        None => {
            tracing::warn!(path = %req.uri().path(), "request without Authorization header");
            StatusCode::UNAUTHORIZED.into_response()
        }
        Some(false) => {
            tracing::warn!(path = %req.uri().path(), "request with a wrong password");
            StatusCode::FORBIDDEN.into_response()
        }
        Some(true) => next.run(req).await,
    }
}

/// Whether the query asks for `trace` (present and not `false`).
fn wants_trace(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let mut kv = pair.splitn(2, '=');
            kv.next() == Some("trace") && kv.next().is_none_or(|v| !v.eq_ignore_ascii_case("false"))
        })
    })
}

/// Completes error responses: an [`ApiError`] gets its full body; any other error response
/// without a body (405, 413, a framework rejection) gets one too. 401/403 stay empty.
pub async fn error_body(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let trace = wants_trace(req.uri().query());
    let mut res = next.run(req).await;
    if let Some(PendingError(err)) = res.extensions_mut().remove::<PendingError>() {
        return render(&err, &path, trace);
    }
    let status = res.status();
    if (status.is_client_error() || status.is_server_error())
        && status != StatusCode::UNAUTHORIZED
        && status != StatusCode::FORBIDDEN
        && !res.headers().contains_key(axum::http::header::CONTENT_TYPE)
    {
        let message = match status {
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed".to_string(),
            StatusCode::PAYLOAD_TOO_LARGE => "Request body too large".to_string(),
            _ => status.canonical_reason().unwrap_or("Error").to_string(),
        };
        return render(&ApiError::new(status, message), &path, trace);
    }
    if status.is_client_error()
        && status != StatusCode::UNAUTHORIZED
        && status != StatusCode::FORBIDDEN
    {
        // A framework rejection with a plain-text body (bad upgrade, body limit): rewrite it.
        let is_json = res
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !is_json {
            let bytes =
                axum::body::to_bytes(std::mem::replace(res.body_mut(), Body::empty()), 64 * 1024)
                    .await
                    .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("Error").to_string()
            } else {
                text
            };
            return render(&ApiError::new(status, message), &path, trace);
        }
    }
    res
}

/// Logs each request per `logging.request.*` (never headers carrying secrets).
pub async fn log_request(State(node): State<AppState>, req: Request, next: Next) -> Response {
    let cfg = &node.config.request_logging;
    if !cfg.enabled {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = if cfg.include_query_string {
        req.uri().query().map(str::to_string)
    } else {
        None
    };
    let client = if cfg.include_client_info {
        req.headers()
            .get("client-name")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    } else {
        None
    };
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    tracing::debug!(
        target: "acoustic::request",
        %method,
        path,
        query = query.as_deref().unwrap_or(""),
        client = client.as_deref().unwrap_or(""),
        status = res.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    res
}

#[cfg(test)]
mod tests {
    use super::wants_trace;

    #[test]
    fn trace_param() {
        assert!(wants_trace(Some("trace=true")));
        assert!(wants_trace(Some("a=1&trace")));
        assert!(wants_trace(Some("trace=1")));
        assert!(!wants_trace(Some("trace=false")));
        assert!(!wants_trace(Some("tracer=true")));
        assert!(!wants_trace(None));
    }
}
