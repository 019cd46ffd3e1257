//! One HTTP GET from a byte offset, following redirects ourselves (at most five), so the final
//! URL is known and every hop carries the `Range` header. Every request asks for in-band ICY
//! metadata (`Icy-MetaData: 1`), as radio players do; servers that have none ignore it. With a
//! route planner, each request leaves from the planner's address and a 429 is tried again from
//! another (see [`super::net`]).

use std::time::Duration;

use reqwest::header::{LOCATION, RANGE};
use reqwest::{Response, StatusCode, Url};

use super::net::Net;

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

pub struct Fetched {
    pub response: Response,
    /// The URL that answered (after redirects).
    pub url: Url,
    /// Whether any redirect was followed.
    pub redirected: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No answer: DNS, connect, TLS, timeout.
    #[error("{0}")]
    Connect(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("redirected to an unusable location: {0}")]
    BadRedirect(String),
}

/// GETs bytes `start..=end` of `url` (`Range: bytes=<start>-[<end>]`, sent from 0 too, so a
/// server that supports ranges says so), with `headers` added (a resolver's User-Agent, Cookie,
/// Referer …). `timeout` bounds the wait for each response's headers.
pub async fn fetch(
    net: &Net,
    mut url: Url,
    start: u64,
    end: Option<u64>,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    let range = match end {
        Some(end) => format!("bytes={start}-{end}"),
        None => format!("bytes={start}-"),
    };
    let mut redirects = 0;
    let mut tries = 0;
    loop {
        let (address, client) = net.pick().map_err(FetchError::Connect)?;
        let mut request = client
            .get(url.clone())
            .header(RANGE, &range)
            .header("Icy-MetaData", "1");
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        tries += 1;
        let response = match tokio::time::timeout(timeout, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(FetchError::Connect(describe(&e))),
            Err(_) => {
                return Err(FetchError::Connect(format!(
                    "no response within {} ms",
                    timeout.as_millis()
                )));
            }
        };
        if response.status() == StatusCode::TOO_MANY_REQUESTS && net.rate_limited(address, tries) {
            tracing::debug!(%url, ?address, "429 Too Many Requests; trying another address");
            continue;
        }
        let location = response
            .status()
            .is_redirection()
            .then(|| response.headers().get(LOCATION))
            .flatten();
        let Some(location) = location else {
            return Ok(Fetched {
                response,
                url,
                redirected: redirects > 0,
            });
        };
        let location = location.to_str().unwrap_or_default().to_string();
        let next = url
            .join(location.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or(FetchError::BadRedirect(location))?;
        redirects += 1;
        if redirects > MAX_REDIRECTS {
            return Err(FetchError::TooManyRedirects);
        }
        url = next;
    }
}

/// A reqwest error with its causes (reqwest's own text is often just "error sending request").
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
