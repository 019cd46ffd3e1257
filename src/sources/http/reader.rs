//! The HTTP media reader: a background task streams the body into a bounded window of bytes;
//! `Read` takes from the window (blocking, with the read timeout, until bytes arrive); `Seek`
//! inside the window is free, elsewhere it reopens the body with a `Range` request. When the
//! connection drops mid-body the task reconnects at the byte it stopped at (a few times, with
//! backoff) and the reader sees nothing of it.
//!
//! Internet radio (a server that answers with `icy-*` headers) is endless: its in-band metadata
//! blocks are cut out of the audio as the bytes arrive (the latest `StreamTitle` is kept), it
//! cannot seek, and a connection that ends is a drop: the stream is joined again.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use reqwest::header::{ACCEPT_RANGES, CONTENT_RANGE};
use reqwest::{Response, StatusCode, Url};
use symphonia::core::io::MediaSource;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::fetch::{FetchError, fetch};
use super::icy::{self, IcyStripper};
use super::net::Net;
use crate::sources::window::{End, State, Window};
use crate::sources::{MediaReader, Notify, Readiness, ReadinessHandle};

/// Consecutive failed reconnects before the stream is given up.
const MAX_RECONNECTS: u32 = 4;
/// The first reconnect waits this long; each next one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// A forward seek at most this far past the window waits for the bytes instead of reopening.
const SKIP_AHEAD: u64 = 64 * 1024;
/// At most this many bytes behind the read position are kept for cheap backward seeks.
const MAX_BACK_KEEP: usize = 256 * 1024;

/// What every connection of one reader shares.
#[derive(Clone)]
pub struct StreamConfig {
    pub net: Arc<Net>,
    /// The URL to reconnect to (the final one after redirects).
    pub url: Url,
    /// Headers sent with every request (a resolver's User-Agent, Cookie, Referer …).
    pub headers: Vec<(String, String)>,
    /// The longest wait for response headers.
    pub header_timeout: Duration,
    /// The longest wait for the next bytes, on the network and in `Read`.
    pub read_timeout: Duration,
    /// The most bytes kept ahead of the read position.
    pub read_ahead: usize,
    /// `Some(n)`: ask for at most `n` bytes per request, and for the next `n` only when a read
    /// is waiting for them (probing: read only what is needed). `None`: one
    /// open-ended request, held open (playback).
    pub request_len: Option<u64>,
}

/// What the fetcher learnt from the first response.
struct Stream {
    config: StreamConfig,
    /// An internet radio stream (the server spoke ICY): endless, so a connection that ends is
    /// a drop to reconnect from, and a reconnect starts the live stream afresh (no ranges).
    live: bool,
    /// The latest `StreamTitle` of the in-band metadata.
    title: Mutex<Option<String>>,
}

/// A blocking, seekable reader over an HTTP resource.
pub struct HttpReader {
    window: Arc<Window>,
    stream: Arc<Stream>,
    runtime: Handle,
    fetcher: JoinHandle<()>,
    range_supported: bool,
    total_len: Option<u64>,
}

impl HttpReader {
    /// Starts streaming `response`, the answer to a request for the resource from byte 0.
    /// Must be called within a tokio runtime.
    pub fn start(config: StreamConfig, response: Response) -> Self {
        let live = icy::is_icy(response.headers());
        let (range_supported, total_len) = if live {
            (false, None)
        } else {
            describe_response(&response)
        };
        let read_ahead = config.read_ahead.max(1);
        // A probe jumps around in a small area; playback keeps memory to the read-ahead.
        let back_keep = match config.request_len {
            Some(_) => MAX_BACK_KEEP,
            None => MAX_BACK_KEEP.min(read_ahead),
        };
        let window = Window::new(read_ahead, back_keep, total_len);
        let stream = Arc::new(Stream {
            config,
            live,
            title: Mutex::new(None),
        });
        let runtime = Handle::current();
        let fetcher = runtime.spawn(run_fetcher(
            window.clone(),
            stream.clone(),
            0,
            0,
            Some(response),
            total_len,
        ));
        HttpReader {
            window,
            stream,
            runtime,
            fetcher,
            range_supported,
            total_len,
        }
    }

    /// Whether the server honours `Range` requests.
    pub fn range_supported(&self) -> bool {
        self.range_supported
    }

    /// Whether the server streams internet radio (ICY): endless, not seekable.
    pub fn is_live(&self) -> bool {
        self.stream.live
    }

    /// A handle on the latest in-band stream title (ICY `StreamTitle`), usable after the reader
    /// is moved into a demuxer.
    pub fn title_handle(&self) -> TitleHandle {
        TitleHandle(self.stream.clone())
    }

    /// Up to `n` bytes from the read position, without consuming them: waits (at most the read
    /// timeout) until that many are buffered or the stream ended.
    pub async fn peek_head(&self, n: usize) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + self.stream.config.read_timeout;
        loop {
            {
                let st = self.window.state.lock();
                let ready = st.readiness();
                if ready.buffered >= n || ready.finished || tokio::time::Instant::now() >= deadline
                {
                    let from = (st.pos - st.buf_start) as usize;
                    let len = n.min(ready.buffered);
                    return st.buf.range(from..from + len).copied().collect();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Moves the window to `target`: the bytes there come from the stash (probing) or from a new
    /// request.
    fn restart_at(&mut self, st: &mut State, target: u64) {
        st.generation += 1;
        self.fetcher.abort();
        let old_start = st.buf_start;
        let old = std::mem::take(&mut st.buf);
        let stashed = st.stash.take();
        if self.stream.config.request_len.is_some() {
            st.stash = Some((old_start, old));
        }
        match stashed {
            Some((start, bytes)) if target >= start && target <= start + bytes.len() as u64 => {
                st.buf_start = start;
                st.buf = bytes;
            }
            _ => {
                st.buf_start = target;
            }
        }
        st.pos = target;
        let from = st.window_end();
        if self.total_len.is_some_and(|len| from >= len) {
            st.end = End::Eof;
            return;
        }
        st.end = End::Open;
        self.fetcher = self.runtime.spawn(run_fetcher(
            self.window.clone(),
            self.stream.clone(),
            st.generation,
            from,
            None,
            self.total_len,
        ));
    }
}

/// See [`HttpReader::title_handle`].
#[derive(Clone)]
pub struct TitleHandle(Arc<Stream>);

impl TitleHandle {
    pub fn get(&self) -> Option<String> {
        self.0.title.lock().clone()
    }
}

impl Drop for HttpReader {
    fn drop(&mut self) {
        self.fetcher.abort();
    }
}

impl Read for HttpReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.window.read(out, self.stream.config.read_timeout)
    }
}

impl Seek for HttpReader {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        let window = self.window.clone();
        let mut st = window.state.lock();
        let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "seek to a negative position");
        let target = match from {
            SeekFrom::Start(n) => n,
            SeekFrom::Current(delta) => st.pos.checked_add_signed(delta).ok_or_else(invalid)?,
            SeekFrom::End(delta) => match self.total_len {
                Some(len) => len.checked_add_signed(delta).ok_or_else(invalid)?,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the length of the resource is unknown",
                    ));
                }
            },
        };
        let end = st.window_end();
        let open = matches!(st.end, End::Open);
        // At or past the end (demuxers look at the length this way): nothing to fetch there,
        // and the window stays for the seek back.
        let past_end = self.total_len.is_some_and(|len| target >= len);
        let in_window = past_end || (target >= st.buf_start && target <= end);
        // Short skips (any forward skip, if the server cannot do ranges) wait for the bytes.
        let skip = target > end
            && (open || matches!(st.end, End::Eof))
            && (!self.range_supported || (open && target - end <= SKIP_AHEAD));
        if in_window || skip {
            st.pos = target;
        } else if self.range_supported {
            self.restart_at(&mut st, target);
        } else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the server does not support range requests",
            ));
        }
        drop(st);
        self.window.room.notify_one();
        Ok(target)
    }
}

impl MediaSource for HttpReader {
    fn is_seekable(&self) -> bool {
        self.range_supported
    }

    fn byte_len(&self) -> Option<u64> {
        self.total_len
    }
}

impl MediaReader for HttpReader {
    fn readiness(&self) -> Readiness {
        self.window.readiness()
    }

    fn set_notify(&mut self, notify: Notify) {
        self.window.set_notify(notify);
    }

    fn readiness_handle(&self) -> ReadinessHandle {
        self.window.readiness_handle()
    }
}

/// (range support, total length) from the answer to a request starting at byte 0.
fn describe_response(response: &Response) -> (bool, Option<u64>) {
    let headers = response.headers();
    if response.status() == StatusCode::PARTIAL_CONTENT {
        let total = content_range(response).and_then(|r| r.total);
        return (true, total);
    }
    let accepts = headers
        .get(ACCEPT_RANGES)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("bytes"));
    (accepts, response.content_length())
}

fn content_range(response: &Response) -> Option<ContentRange> {
    response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range)
}

#[derive(Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    /// The last byte, inclusive.
    pub last: u64,
    pub total: Option<u64>,
}

/// Parses `bytes <start>-<last>/<total or *>`.
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, last) = range.trim().split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let (start, last) = (start.trim().parse().ok()?, last.trim().parse().ok()?);
    (start <= last).then_some(ContentRange { start, last, total })
}

enum PumpEnd {
    /// The resource ended.
    Eof,
    /// A bounded range was delivered whole; more of the resource follows.
    RangeDone,
    /// The connection failed or stopped early.
    Dropped(String),
    /// This fetcher's generation is over (the reader moved elsewhere or is gone).
    Stale,
}

async fn run_fetcher(
    window: Arc<Window>,
    stream: Arc<Stream>,
    generation: u64,
    mut offset: u64,
    mut first: Option<Response>,
    total_len: Option<u64>,
) {
    let config = &stream.config;
    let mut failures = 0u32;
    loop {
        let response = match first.take() {
            Some(response) => Ok(response),
            None => {
                // Connect when the reader is about to need the bytes: at once after a seek or
                // a drop while streaming; for a probe, only once a read waits for them (a
                // range asked for earlier could be made useless by the probe's next seek).
                let wanted = match config.request_len {
                    Some(_) => window.wait_for_reader(generation).await,
                    None => window.wait_for_room(generation, window.read_ahead).await,
                };
                if !wanted {
                    return;
                }
                connect_at(&stream, offset).await
            }
        };
        let outcome = match response {
            Ok(response) => {
                pump(
                    &window,
                    &stream,
                    generation,
                    response,
                    &mut offset,
                    &mut failures,
                    total_len,
                )
                .await
            }
            Err(ConnectError::Fatal(message)) => {
                window.finish(generation, End::Failed(io::ErrorKind::Other, message));
                return;
            }
            Err(ConnectError::Eof) => PumpEnd::Eof,
            Err(ConnectError::Retry(message)) => PumpEnd::Dropped(message),
        };
        match outcome {
            PumpEnd::Eof => {
                window.finish(generation, End::Eof);
                return;
            }
            PumpEnd::Stale => return,
            // The next piece is asked for when the reader is about to need it (above).
            PumpEnd::RangeDone => {}
            PumpEnd::Dropped(message) => {
                failures += 1;
                if failures > MAX_RECONNECTS {
                    tracing::debug!(url = %config.url, "giving up on the stream: {message}");
                    window.finish(
                        generation,
                        End::Failed(
                            io::ErrorKind::ConnectionAborted,
                            format!("the connection failed {failures} times in a row: {message}"),
                        ),
                    );
                    return;
                }
                tracing::debug!(url = %config.url, offset, "reconnecting: {message}");
                tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(failures - 1)).await;
            }
        }
    }
}

/// Streams one response body into the window until it ends.
async fn pump(
    window: &Window,
    stream: &Stream,
    generation: u64,
    mut response: Response,
    offset: &mut u64,
    failures: &mut u32,
    total_len: Option<u64>,
) -> PumpEnd {
    let config = &stream.config;
    // Where this body should end (exclusive), if it says.
    let body_end = if stream.live {
        None
    } else if response.status() == StatusCode::PARTIAL_CONTENT {
        content_range(&response).map(|r| r.last + 1)
    } else {
        response.content_length().map(|len| *offset + len)
    };
    // In-band metadata blocks are cut out of the audio (each connection counts afresh).
    let mut stripper = icy::metaint(response.headers()).map(IcyStripper::new);
    // Bytes received but not yet taken into the window (it was full).
    let mut pending = Bytes::new();
    loop {
        if !window.wait_for_room(generation, window.read_ahead).await {
            return PumpEnd::Stale;
        }
        if pending.is_empty() {
            match tokio::time::timeout(config.read_timeout, response.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    pending = match stripper.as_mut() {
                        Some(stripper) => {
                            let (audio, title) = stripper.strip(&bytes);
                            if let Some(title) = title {
                                tracing::debug!(url = %config.url, title, "stream title");
                                *stream.title.lock() = Some(title);
                            }
                            Bytes::from(audio)
                        }
                        None => bytes,
                    };
                    *failures = 0;
                    continue;
                }
                Ok(Ok(None)) => {
                    return match (body_end, total_len) {
                        // A radio stream does not end: the server dropped us.
                        _ if stream.live => PumpEnd::Dropped("the stream ended".into()),
                        (Some(end), _) if *offset < end => {
                            PumpEnd::Dropped(format!("the body ended at byte {offset} of {end}"))
                        }
                        (_, Some(total)) if *offset >= total => PumpEnd::Eof,
                        // A bounded request delivered whole: the rest is still to be asked for.
                        (Some(_), _) if config.request_len.is_some() => PumpEnd::RangeDone,
                        (_, Some(total)) => {
                            PumpEnd::Dropped(format!("the body ended at byte {offset} of {total}"))
                        }
                        _ => PumpEnd::Eof,
                    };
                }
                Ok(Err(e)) => return PumpEnd::Dropped(super::fetch::describe(&e)),
                Err(_) => {
                    return PumpEnd::Dropped(format!(
                        "no data within {} ms",
                        config.read_timeout.as_millis()
                    ));
                }
            }
        }
        let Some(taken) = window.append(generation, &pending) else {
            return PumpEnd::Stale;
        };
        pending = pending.slice(taken..);
        *offset += taken as u64;
    }
}

enum ConnectError {
    /// Worth another try (network trouble, a 5xx).
    Retry(String),
    /// The resource cannot be read from this offset (gone, no range support).
    Fatal(String),
    /// The offset is at or past the end (416).
    Eof,
}

/// Requests the resource from `offset` and checks the answer really starts there. A live
/// stream is joined afresh wherever it is now.
async fn connect_at(stream: &Stream, offset: u64) -> Result<Response, ConnectError> {
    let config = &stream.config;
    let (from, last) = if stream.live {
        (0, None)
    } else {
        (offset, config.request_len.map(|n| offset + n.max(1) - 1))
    };
    let fetched = fetch(
        &config.net,
        config.url.clone(),
        from,
        last,
        &config.headers,
        config.header_timeout,
    )
    .await
    .map_err(|e| match e {
        FetchError::Connect(m) => ConnectError::Retry(m),
        other => ConnectError::Fatal(other.to_string()),
    })?;
    let response = fetched.response;
    let status = response.status();
    if stream.live && status.is_success() {
        return Ok(response);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        return match content_range(&response) {
            Some(range) if range.start == offset => Ok(response),
            _ => Err(ConnectError::Fatal(format!(
                "asked for byte {offset}, the server answered a different range"
            ))),
        };
    }
    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        return Err(ConnectError::Eof);
    }
    if status.is_success() && offset == 0 {
        return Ok(response);
    }
    if status.is_success() {
        return Err(ConnectError::Fatal(
            "the server does not support range requests".into(),
        ));
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(ConnectError::Retry(format!(
            "status code {}",
            status.as_u16()
        )));
    }
    Err(ConnectError::Fatal(format!(
        "status code {} when reconnecting",
        status.as_u16()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some(ContentRange {
                start: 0,
                last: 99,
                total: Some(1000)
            })
        );
        assert_eq!(
            parse_content_range("bytes 500-999/*"),
            Some(ContentRange {
                start: 500,
                last: 999,
                total: None
            })
        );
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes 9-1/20"), None);
    }
}
