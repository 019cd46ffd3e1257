//! The HTTP media reader: a background task streams the body into a bounded window of bytes;
//! `Read` takes from the window (blocking, with the read timeout, until bytes arrive); `Seek`
//! inside the window is free, elsewhere it reopens the body with a `Range` request. When the
//! connection drops mid-body the task reconnects at the byte it stopped at (a few times, with
//! backoff) and the reader sees nothing of it.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use reqwest::header::{ACCEPT_RANGES, CONTENT_RANGE};
use reqwest::{Response, StatusCode, Url};
use symphonia::core::io::MediaSource;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::fetch::{FetchError, fetch};
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
    pub client: reqwest::Client,
    /// The URL to reconnect to (the final one after redirects).
    pub url: Url,
    /// The longest wait for response headers.
    pub header_timeout: Duration,
    /// The longest wait for the next bytes, on the network and in `Read`.
    pub read_timeout: Duration,
    /// The most bytes kept ahead of the read position.
    pub read_ahead: usize,
    /// `Some(n)`: ask for at most `n` bytes per request, and for the next `n` only when the
    /// reader is about to need them (probing: read only what is needed). `None`: one
    /// open-ended request, held open (playback).
    pub request_len: Option<u64>,
}

enum End {
    Open,
    Eof,
    Failed(io::ErrorKind, String),
}

struct State {
    /// Bytes `[buf_start, buf_start + buf.len())` of the resource.
    buf: VecDeque<u8>,
    buf_start: u64,
    /// The reader's position. `pos >= buf_start`; `pos` past the window means a short forward
    /// skip is waiting for its bytes.
    pos: u64,
    /// Bumped whenever the window is thrown away; a fetcher of an older generation stops.
    generation: u64,
    end: End,
    /// The resource's length, if known.
    total_len: Option<u64>,
    /// Probing only: the window before the last far seek (start, bytes), for the seek back
    /// that usually follows (a look at the tail, then back to the head).
    stash: Option<(u64, VecDeque<u8>)>,
}

impl State {
    fn window_end(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    fn buffered(&self) -> usize {
        self.window_end().saturating_sub(self.pos) as usize
    }

    /// The reader sits at or past the known end (reads return EOF whatever the window holds).
    fn at_end(&self) -> bool {
        self.total_len.is_some_and(|len| self.pos >= len)
    }

    /// Whether the fetcher should fetch more to keep fewer than `below` bytes ahead.
    fn wants_more(&self, below: usize) -> bool {
        !self.at_end() && self.buffered() < below.max(1)
    }

    fn readiness(&self) -> Readiness {
        Readiness {
            buffered: self.buffered(),
            finished: self.at_end() || !matches!(self.end, End::Open),
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when bytes arrive or the stream ends (wakes `Read`).
    data: Condvar,
    /// Signalled when the reader consumed or moved (wakes a fetcher waiting for room).
    room: tokio::sync::Notify,
    notify: Mutex<Option<Notify>>,
    back_keep: usize,
    read_ahead: usize,
}

impl Shared {
    fn call_notify(&self) {
        let notify = self.notify.lock().clone();
        if let Some(notify) = notify {
            notify();
        }
    }

    /// Appends from `bytes` what fits in the read-ahead, for a fetcher of `generation`: how
    /// many bytes were taken, or `None` when that fetcher is stale.
    fn append(&self, generation: u64, bytes: &[u8]) -> Option<usize> {
        let taken = {
            let mut st = self.state.lock();
            if st.generation != generation {
                return None;
            }
            let room = if st.at_end() {
                0
            } else {
                self.read_ahead.saturating_sub(st.buffered())
            };
            let taken = room.min(bytes.len());
            st.buf.extend(bytes[..taken].iter().copied());
            let keep_from = st.pos.saturating_sub(self.back_keep as u64);
            let excess = keep_from
                .saturating_sub(st.buf_start)
                .min(st.buf.len() as u64);
            st.buf.drain(..excess as usize);
            st.buf_start += excess;
            taken
        };
        if taken > 0 {
            self.data.notify_all();
            self.call_notify();
        }
        Some(taken)
    }

    fn finish(&self, generation: u64, end: End) {
        {
            let mut st = self.state.lock();
            if st.generation != generation {
                return;
            }
            st.end = end;
        }
        self.data.notify_all();
        self.call_notify();
    }

    /// Waits until fewer than `below` bytes are buffered ahead of the reader; false when the
    /// fetcher is stale.
    async fn wait_for_room(&self, generation: u64, below: usize) -> bool {
        loop {
            {
                let st = self.state.lock();
                if st.generation != generation {
                    return false;
                }
                if st.wants_more(below) {
                    return true;
                }
            }
            self.room.notified().await;
        }
    }
}

/// A blocking, seekable reader over an HTTP resource.
pub struct HttpReader {
    shared: Arc<Shared>,
    config: Arc<StreamConfig>,
    runtime: Handle,
    fetcher: JoinHandle<()>,
    range_supported: bool,
    total_len: Option<u64>,
}

impl HttpReader {
    /// Starts streaming `response`, the answer to a request for the resource from byte 0.
    /// Must be called within a tokio runtime.
    pub fn start(config: StreamConfig, response: Response) -> Self {
        let (range_supported, total_len) = describe_response(&response);
        let read_ahead = config.read_ahead.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: VecDeque::new(),
                buf_start: 0,
                pos: 0,
                generation: 0,
                end: End::Open,
                total_len,
                stash: None,
            }),
            data: Condvar::new(),
            room: tokio::sync::Notify::new(),
            notify: Mutex::new(None),
            // A probe jumps around in a small area; playback keeps memory to the read-ahead.
            back_keep: match config.request_len {
                Some(_) => MAX_BACK_KEEP,
                None => MAX_BACK_KEEP.min(read_ahead),
            },
            read_ahead,
        });
        let config = Arc::new(config);
        let runtime = Handle::current();
        let fetcher = runtime.spawn(run_fetcher(
            shared.clone(),
            config.clone(),
            0,
            0,
            Some(response),
            total_len,
        ));
        HttpReader {
            shared,
            config,
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

    /// Moves the window to `target`: the bytes there come from the stash (probing) or from a new
    /// request.
    fn restart_at(&mut self, st: &mut State, target: u64) {
        st.generation += 1;
        self.fetcher.abort();
        let old_start = st.buf_start;
        let old = std::mem::take(&mut st.buf);
        let stashed = st.stash.take();
        if self.config.request_len.is_some() {
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
            self.shared.clone(),
            self.config.clone(),
            st.generation,
            from,
            None,
            self.total_len,
        ));
    }
}

impl Drop for HttpReader {
    fn drop(&mut self) {
        self.fetcher.abort();
    }
}

impl Read for HttpReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + self.config.read_timeout;
        let mut st = self.shared.state.lock();
        loop {
            if st.at_end() {
                return Ok(0);
            }
            let available = st.buffered();
            if available > 0 && st.pos >= st.buf_start {
                let from = (st.pos - st.buf_start) as usize;
                let n = out.len().min(available);
                let (a, b) = st.buf.as_slices();
                if from + n <= a.len() {
                    out[..n].copy_from_slice(&a[from..from + n]);
                } else if from >= a.len() {
                    let from = from - a.len();
                    out[..n].copy_from_slice(&b[from..from + n]);
                } else {
                    let first = a.len() - from;
                    out[..first].copy_from_slice(&a[from..]);
                    out[first..n].copy_from_slice(&b[..n - first]);
                }
                st.pos += n as u64;
                drop(st);
                self.shared.room.notify_one();
                return Ok(n);
            }
            match &st.end {
                End::Eof => return Ok(0),
                End::Failed(kind, message) => return Err(io::Error::new(*kind, message.clone())),
                End::Open => {}
            }
            if self.shared.data.wait_until(&mut st, deadline).timed_out() {
                // One last look: bytes may have come with the deadline.
                if st.buffered() == 0 && matches!(st.end, End::Open) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no data from the server within {} ms",
                            self.config.read_timeout.as_millis()
                        ),
                    ));
                }
            }
        }
    }
}

impl Seek for HttpReader {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        let shared = self.shared.clone();
        let mut st = shared.state.lock();
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
        self.shared.room.notify_one();
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
        self.shared.state.lock().readiness()
    }

    fn set_notify(&mut self, notify: Notify) {
        *self.shared.notify.lock() = Some(notify);
    }

    fn readiness_handle(&self) -> ReadinessHandle {
        let shared = self.shared.clone();
        ReadinessHandle::new(move || shared.state.lock().readiness())
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
    shared: Arc<Shared>,
    config: Arc<StreamConfig>,
    generation: u64,
    mut offset: u64,
    mut first: Option<Response>,
    total_len: Option<u64>,
) {
    let mut failures = 0u32;
    loop {
        let response = match first.take() {
            Some(response) => Ok(response),
            None => {
                // Connect when the reader is about to need the bytes: at once after a seek or
                // a drop while streaming; for a probe, only once its window runs low.
                let below = match config.request_len {
                    Some(_) => shared.read_ahead / 4,
                    None => shared.read_ahead,
                };
                if !shared.wait_for_room(generation, below).await {
                    return;
                }
                connect_at(&config, offset).await
            }
        };
        let outcome = match response {
            Ok(response) => {
                pump(
                    &shared,
                    &config,
                    generation,
                    response,
                    &mut offset,
                    &mut failures,
                    total_len,
                )
                .await
            }
            Err(ConnectError::Fatal(message)) => {
                shared.finish(generation, End::Failed(io::ErrorKind::Other, message));
                return;
            }
            Err(ConnectError::Eof) => PumpEnd::Eof,
            Err(ConnectError::Retry(message)) => PumpEnd::Dropped(message),
        };
        match outcome {
            PumpEnd::Eof => {
                shared.finish(generation, End::Eof);
                return;
            }
            PumpEnd::Stale => return,
            // The next piece is asked for when the reader is about to need it (above).
            PumpEnd::RangeDone => {}
            PumpEnd::Dropped(message) => {
                failures += 1;
                if failures > MAX_RECONNECTS {
                    tracing::debug!(url = %config.url, "giving up on the stream: {message}");
                    shared.finish(
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
    shared: &Shared,
    config: &StreamConfig,
    generation: u64,
    mut response: Response,
    offset: &mut u64,
    failures: &mut u32,
    total_len: Option<u64>,
) -> PumpEnd {
    // Where this body should end (exclusive), if it says.
    let body_end = if response.status() == StatusCode::PARTIAL_CONTENT {
        content_range(&response).map(|r| r.last + 1)
    } else {
        response.content_length().map(|len| *offset + len)
    };
    // Bytes received but not yet taken into the window (it was full).
    let mut pending = Bytes::new();
    loop {
        if !shared.wait_for_room(generation, shared.read_ahead).await {
            return PumpEnd::Stale;
        }
        if pending.is_empty() {
            match tokio::time::timeout(config.read_timeout, response.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    pending = bytes;
                    *failures = 0;
                }
                Ok(Ok(None)) => {
                    return match (body_end, total_len) {
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
        let Some(taken) = shared.append(generation, &pending) else {
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

/// Requests the resource from `offset` and checks the answer really starts there.
async fn connect_at(config: &StreamConfig, offset: u64) -> Result<Response, ConnectError> {
    let last = config.request_len.map(|n| offset + n.max(1) - 1);
    let fetched = fetch(
        &config.client,
        config.url.clone(),
        offset,
        last,
        config.header_timeout,
    )
    .await
    .map_err(|e| match e {
        FetchError::Connect(m) => ConnectError::Retry(m),
        other => ConnectError::Fatal(other.to_string()),
    })?;
    let response = fetched.response;
    let status = response.status();
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
