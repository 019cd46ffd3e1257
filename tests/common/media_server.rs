//! A loopback HTTP/1.1 media server for tests, with scripted faults.
//!
//! It serves files from a directory (and byte buffers registered with [`MediaServer::put`]) with
//! `Content-Type`, `Content-Length`, `Accept-Ranges: bytes` and single-range requests (206, 416),
//! keeps connections alive, and logs every request. Per path, a [`Script`] can make it answer
//! with an error status (404, 500, 429 …, once, n times or always), send the client through a
//! chain of redirects, drop the connection or stall after N body bytes, throttle to a byte rate,
//! or ignore `Range`.
//!
//! Two generated resources stand in for live servers: an ICY (SHOUTcast/Icecast) radio stream
//! ([`MediaServer::put_icy`]: a file looped forever at a byte rate, with `icy-metaint`
//! metadata blocks whose `StreamTitle` changes) and a live HLS media playlist
//! ([`MediaServer::put_live_hls`]: a window of segments that slides with the clock).
//!
//! It runs on its own thread and tokio runtime, so it works from sync tests and from any async
//! runtime flavour, and it writes to the socket itself (tokio + `httparse` for the request head)
//! because the faults need byte-exact control that an HTTP server library does not give: "close
//! after exactly N body bytes" and "keep the socket open but send nothing more".
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How many matching requests a scripted behaviour applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    /// The first matching request only.
    Once,
    /// The first `n` matching requests.
    N(u32),
    /// Every matching request.
    Always,
}

impl Times {
    fn allows(self, used: u32) -> bool {
        match self {
            Times::Once => used < 1,
            Times::N(n) => used < n,
            Times::Always => true,
        }
    }
}

/// Scripted behaviour for one path. Build with the methods; several can be combined (e.g.
/// `Script::new().no_range().throttle(64_000)`). The order of effects for a request is:
/// redirect hop → error status → normal answer (with range, throttle, stall, drop).
#[derive(Clone, Debug, Default)]
pub struct Script {
    status: Option<(u16, Times)>,
    redirects: u32,
    redirect_status: Option<u16>,
    drop_after: Option<(u64, Times)>,
    stall_after: Option<(u64, Times)>,
    throttle: Option<u64>,
    no_range: bool,
    content_type: Option<Option<String>>,
    headers: Vec<(String, String)>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// Answer `code` (with a short text body) to the first matching requests, as `times` says;
    /// later requests are served normally.
    pub fn status(mut self, code: u16, times: Times) -> Script {
        self.status = Some((code, times));
        self
    }

    /// 404 on every request, even if the file exists.
    pub fn not_found(self) -> Script {
        self.status(404, Times::Always)
    }

    /// 500 on every request.
    pub fn server_error(self) -> Script {
        self.status(500, Times::Always)
    }

    /// 429 Too Many Requests as `times` says (add `Retry-After` with [`Script::header`]).
    pub fn too_many_requests(self, times: Times) -> Script {
        self.status(429, times)
    }

    /// Make the path the start of a chain of `hops` redirects: `/p` → `/p?hop=1` → … →
    /// `/p?hop=<hops>`, which is served. `Location` is absolute. 302 unless
    /// [`Script::redirect_status`] says otherwise.
    pub fn redirects(mut self, hops: u32) -> Script {
        self.redirects = hops;
        self
    }

    /// The status used for redirects (301, 302, 303, 307, 308).
    pub fn redirect_status(mut self, code: u16) -> Script {
        self.redirect_status = Some(code);
        self
    }

    /// Close the connection after sending `bytes` bytes of the response body (counted per
    /// response, from wherever its range starts), as `times` says. The client sees a clean FIN
    /// before `Content-Length` is reached.
    pub fn drop_after(mut self, bytes: u64, times: Times) -> Script {
        self.drop_after = Some((bytes, times));
        self
    }

    /// Send `bytes` bytes of the body, then nothing more while keeping the socket open (until
    /// the server is dropped), as `times` says.
    pub fn stall_after(mut self, bytes: u64, times: Times) -> Script {
        self.stall_after = Some((bytes, times));
        self
    }

    /// Send the body at no more than `bytes_per_second`.
    pub fn throttle(mut self, bytes_per_second: u64) -> Script {
        assert!(bytes_per_second > 0, "a throttle needs a positive rate");
        self.throttle = Some(bytes_per_second);
        self
    }

    /// Ignore `Range` (always 200 with the whole body) and send no `Accept-Ranges`.
    pub fn no_range(mut self) -> Script {
        self.no_range = true;
        self
    }

    /// Override the `Content-Type` (`None`: send none).
    pub fn content_type(mut self, value: Option<&str>) -> Script {
        self.content_type = Some(value.map(str::to_owned));
        self
    }

    /// Add a header to every answer for this path (e.g. `Retry-After`, `icy-name`).
    pub fn header(mut self, name: &str, value: &str) -> Script {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Sequence number of the TCP connection it came on (1, 2, …).
    pub connection: u64,
    /// The client's address (a new source port means a new connection).
    pub peer: SocketAddr,
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    pub query: Option<String>,
    /// The raw `Range` header, if any.
    pub range: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The status the server answered with.
    pub status: u16,
    /// When the request head was complete.
    pub at: Instant,
}

impl RequestRecord {
    /// The first byte asked for by `Range: bytes=N-…` (0 without a Range header).
    pub fn range_start(&self) -> Option<u64> {
        match &self.range {
            None => Some(0),
            Some(r) => r
                .trim()
                .strip_prefix("bytes=")?
                .split('-')
                .next()?
                .trim()
                .parse()
                .ok(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a path serves.
#[derive(Clone, Debug)]
enum Resource {
    File(PathBuf),
    Bytes {
        data: Arc<Vec<u8>>,
        content_type: Option<String>,
    },
    Icy(Arc<IcyStream>),
    LiveHls(Arc<LiveHls>),
}

/// An endless ICY stream: `audio` looped, a metadata block after every `metaint` bytes.
#[derive(Clone, Debug)]
pub struct IcyStream {
    pub audio: Arc<Vec<u8>>,
    pub content_type: String,
    pub metaint: usize,
    /// `StreamTitle`s in turn, a new one every `blocks_per_title` metadata blocks (the blocks
    /// between repeat nothing: a zero length byte).
    pub titles: Vec<String>,
    pub blocks_per_title: usize,
    /// Audio bytes per second after the first `burst` bytes (which go at once).
    pub rate: u64,
    pub burst: usize,
    pub name: Option<String>,
}

/// A live HLS media playlist over `segments` (URIs relative to the playlist, each `seconds`
/// long), used in a loop: at any time the playlist lists the `window` latest segments; one more
/// is added every `seconds` from the moment it is registered.
#[derive(Clone, Debug)]
pub struct LiveHls {
    pub segments: Vec<String>,
    pub seconds: f64,
    pub window: usize,
    started: Instant,
}

impl LiveHls {
    fn playlist(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let latest = (elapsed / self.seconds).floor() as u64 + self.window as u64 - 1;
        let first = latest + 1 - self.window as u64;
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n",
            self.seconds.ceil() as u64
        );
        for seq in first..=latest {
            let uri = &self.segments[(seq % self.segments.len() as u64) as usize];
            text.push_str(&format!("#EXTINF:{:.3},\n{uri}?seq={seq}\n", self.seconds));
        }
        text
    }
}

#[derive(Default)]
struct ScriptState {
    script: Script,
    status_used: u32,
    drop_used: u32,
    stall_used: u32,
}

struct Shared {
    addr: SocketAddr,
    root: Option<PathBuf>,
    scripts: Mutex<HashMap<String, ScriptState>>,
    resources: Mutex<HashMap<String, Resource>>,
    log: Mutex<Vec<RequestRecord>>,
    connections: AtomicU64,
}

/// A running server on 127.0.0.1. Stopped (all its connections closed) when dropped.
pub struct MediaServer {
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MediaServer {
    /// Starts a server that serves the files under `root` (e.g. `common::media_dir()`).
    pub fn start(root: impl Into<PathBuf>) -> MediaServer {
        Self::launch(Some(root.into()))
    }

    /// Starts a server with no directory; serve content with [`MediaServer::put`].
    pub fn start_empty() -> MediaServer {
        Self::launch(None)
    }

    fn launch(root: Option<PathBuf>) -> MediaServer {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("media-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind a loopback port");
                    let shared = Arc::new(Shared {
                        addr: listener.local_addr().expect("local address"),
                        root,
                        scripts: Mutex::default(),
                        resources: Mutex::default(),
                        log: Mutex::default(),
                        connections: AtomicU64::new(0),
                    });
                    addr_tx.send(shared.clone()).expect("starter waits");
                    tokio::select! {
                        _ = stop_rx => {}
                        () = accept_loop(listener, shared) => {}
                    }
                });
                // Dropping the runtime here cancels every connection task and closes its socket,
                // stalled ones included.
            })
            .expect("spawn the media server thread");
        let shared = addr_rx.recv().expect("media server failed to start");
        MediaServer {
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT/` + `path` (with or without a leading slash).
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}/{}",
            self.shared.addr,
            path.trim_start_matches('/')
        )
    }

    /// Sets (replaces) the script for `path`; its counters start from zero.
    pub fn script(&self, path: &str, script: Script) {
        let state = ScriptState {
            script,
            ..ScriptState::default()
        };
        self.shared
            .scripts
            .lock()
            .unwrap()
            .insert(normalise(path), state);
    }

    /// Removes the script for `path`: it is served normally again.
    pub fn clear_script(&self, path: &str) {
        self.shared.scripts.lock().unwrap().remove(&normalise(path));
    }

    /// Serves `data` at `path` (takes precedence over a file of that name).
    pub fn put(&self, path: &str, data: impl Into<Vec<u8>>, content_type: Option<&str>) {
        let resource = Resource::Bytes {
            data: Arc::new(data.into()),
            content_type: content_type.map(str::to_owned),
        };
        self.shared
            .resources
            .lock()
            .unwrap()
            .insert(normalise(path), resource);
    }

    /// Serves an endless ICY stream at `path`.
    pub fn put_icy(&self, path: &str, stream: IcyStream) {
        self.shared
            .resources
            .lock()
            .unwrap()
            .insert(normalise(path), Resource::Icy(Arc::new(stream)));
    }

    /// Serves a live HLS playlist at `path` (see [`LiveHls`]); its clock starts now.
    pub fn put_live_hls(&self, path: &str, segments: Vec<String>, seconds: f64, window: usize) {
        let live = LiveHls {
            segments,
            seconds,
            window,
            started: Instant::now(),
        };
        self.shared
            .resources
            .lock()
            .unwrap()
            .insert(normalise(path), Resource::LiveHls(Arc::new(live)));
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The requests for one path (query ignored).
    pub fn requests_for(&self, path: &str) -> Vec<RequestRecord> {
        let path = normalise(path);
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits up to `timeout` until `path` has seen at least `n` requests; returns them.
    pub fn wait_for_requests(&self, path: &str, n: usize, timeout: Duration) -> Vec<RequestRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests_for(path);
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn clear_log(&self) {
        self.shared.log.lock().unwrap().clear();
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn normalise(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((socket, peer)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let id = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::spawn(serve_connection(socket, peer, id, shared.clone()));
    }
}

/// A parsed request head.
struct Request {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to do with the connection after a response.
enum After {
    KeepAlive,
    Close,
    /// Hold the socket open and send nothing (until the server stops).
    Stall,
}

async fn serve_connection(
    mut socket: TcpStream,
    peer: SocketAddr,
    connection: u64,
    shared: Arc<Shared>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let (request, consumed) = match read_head(&mut socket, &mut buf).await {
            Some(Ok(r)) => r,
            Some(Err(())) => {
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                return;
            }
            None => return,
        };
        buf.drain(..consumed);
        // Discard a request body, if one was announced (media clients send none).
        let body_len: usize = request
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < body_len {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..body_len);

        let close_requested = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        match respond(&mut socket, &request, peer, connection, &shared).await {
            Ok(After::KeepAlive) if !close_requested => {}
            Ok(After::Stall) => {
                std::future::pending::<()>().await;
            }
            _ => {
                let _ = socket.shutdown().await;
                return;
            }
        }
    }
}

/// Reads until a full request head is in `buf`. `None`: the client closed (or I/O failed).
async fn read_head(
    socket: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<Result<(Request, usize), ()>> {
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let target = req.path.unwrap_or("/");
                    let (path, query) = match target.split_once('?') {
                        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                        None => (target.to_owned(), None),
                    };
                    let request = Request {
                        method: req.method.unwrap_or("GET").to_owned(),
                        path,
                        query,
                        headers: req
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_owned(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                    };
                    return Some(Ok((request, n)));
                }
                Ok(httparse::Status::Partial) if buf.len() < 64 * 1024 => {}
                _ => return Some(Err(())),
            }
        }
        let mut chunk = [0u8; 4096];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The faults that apply to one response, decided (and counted) when the request arrives.
#[derive(Default)]
struct Plan {
    redirect_to: Option<(u16, String)>,
    status: Option<u16>,
    drop_after: Option<u64>,
    stall_after: Option<u64>,
    throttle: Option<u64>,
    no_range: bool,
    content_type: Option<Option<String>>,
    headers: Vec<(String, String)>,
}

fn plan(shared: &Shared, request: &Request) -> Plan {
    let mut scripts = shared.scripts.lock().unwrap();
    let Some(state) = scripts.get_mut(&request.path) else {
        return Plan::default();
    };
    let s = &state.script;
    let mut plan = Plan {
        throttle: s.throttle,
        no_range: s.no_range,
        content_type: s.content_type.clone(),
        headers: s.headers.clone(),
        ..Plan::default()
    };
    let hop: u32 = request
        .query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("hop=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if hop < s.redirects {
        let location = format!("http://{}{}?hop={}", shared.addr, request.path, hop + 1);
        plan.redirect_to = Some((s.redirect_status.unwrap_or(302), location));
        return plan;
    }
    if let Some((code, times)) = s.status
        && times.allows(state.status_used)
    {
        state.status_used += 1;
        plan.status = Some(code);
        return plan;
    }
    if let Some((n, times)) = s.drop_after
        && times.allows(state.drop_used)
    {
        state.drop_used += 1;
        plan.drop_after = Some(n);
    }
    if let Some((n, times)) = s.stall_after
        && times.allows(state.stall_used)
    {
        state.stall_used += 1;
        plan.stall_after = Some(n);
    }
    plan
}

fn lookup(shared: &Shared, path: &str) -> Option<Resource> {
    if let Some(r) = shared.resources.lock().unwrap().get(path) {
        return Some(r.clone());
    }
    let root = shared.root.as_ref()?;
    let rel = Path::new(path.trim_start_matches('/'));
    // Only plain names below the root.
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = root.join(rel);
    full.is_file().then_some(Resource::File(full))
}

fn content_type_for(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp3" => "audio/mpeg",
        "m4a" | "mp4" => "audio/mp4",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "ogg" | "oga" => "audio/ogg",
        "opus" => "audio/ogg; codecs=opus",
        "webm" => "audio/webm",
        "mka" => "audio/x-matroska",
        "m3u" => "audio/x-mpegurl",
        "m3u8" => "application/vnd.apple.mpegurl",
        "pls" => "audio/x-scpls",
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A parsed single `Range: bytes=…` against a body of `len` bytes.
enum RangeAsk {
    Whole,
    Part(u64, u64), // inclusive
    Unsatisfiable,
}

fn parse_range(value: &str, len: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole; // unknown unit: ignore, as RFC 9110 allows
    };
    if spec.contains(',') {
        return RangeAsk::Whole; // multiple ranges: answer with the whole body
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => b
            .parse::<u64>()
            .ok()
            .map(|n| (len.saturating_sub(n), len.saturating_sub(1), n == 0)),
        (false, true) => a
            .parse::<u64>()
            .ok()
            .map(|s| (s, len.saturating_sub(1), false)),
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => Some((s, e.min(len.saturating_sub(1)), false)),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => RangeAsk::Whole,
        Some((s, _, _)) if s >= len => RangeAsk::Unsatisfiable,
        Some((_, _, true)) => RangeAsk::Unsatisfiable,
        Some((s, e, false)) => RangeAsk::Part(s, e),
    }
}

async fn respond(
    socket: &mut TcpStream,
    request: &Request,
    peer: SocketAddr,
    connection: u64,
    shared: &Shared,
) -> std::io::Result<After> {
    let plan = plan(shared, request);
    let log = |status: u16| {
        shared.log.lock().unwrap().push(RequestRecord {
            connection,
            peer,
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            range: request.header("range").map(str::to_owned),
            headers: request.headers.clone(),
            status,
            at: Instant::now(),
        });
    };
    let head = |status: u16, headers: &[(String, String)]| {
        let mut h = format!(
            "HTTP/1.1 {status} {}\r\nserver: acoustic-test-media\r\n",
            reason(status)
        );
        for (n, v) in headers.iter().chain(&plan.headers) {
            h.push_str(&format!("{n}: {v}\r\n"));
        }
        h.push_str("\r\n");
        h
    };
    let is_head = request.method.eq_ignore_ascii_case("HEAD");

    let simple = |status: u16, extra: Vec<(String, String)>| {
        let body = format!("{status} {}\n", reason(status));
        let mut headers = vec![
            (
                "content-type".to_owned(),
                "text/plain; charset=utf-8".to_owned(),
            ),
            ("content-length".to_owned(), body.len().to_string()),
        ];
        headers.extend(extra);
        (headers, body)
    };

    if let Some((code, location)) = &plan.redirect_to {
        log(*code);
        let (headers, body) = simple(*code, vec![("location".to_owned(), location.clone())]);
        socket.write_all(head(*code, &headers).as_bytes()).await?;
        if !is_head {
            socket.write_all(body.as_bytes()).await?;
        }
        return Ok(After::KeepAlive);
    }
    if let Some(code) = plan.status {
        log(code);
        let (headers, body) = simple(code, Vec::new());
        socket.write_all(head(code, &headers).as_bytes()).await?;
        if !is_head {
            socket.write_all(body.as_bytes()).await?;
        }
        return Ok(After::KeepAlive);
    }
    if !(is_head || request.method.eq_ignore_ascii_case("GET")) {
        log(405);
        let (headers, body) = simple(405, vec![("allow".to_owned(), "GET, HEAD".to_owned())]);
        socket.write_all(head(405, &headers).as_bytes()).await?;
        socket.write_all(body.as_bytes()).await?;
        return Ok(After::KeepAlive);
    }
    let Some(resource) = lookup(shared, &request.path) else {
        log(404);
        let (headers, body) = simple(404, Vec::new());
        socket.write_all(head(404, &headers).as_bytes()).await?;
        if !is_head {
            socket.write_all(body.as_bytes()).await?;
        }
        return Ok(After::KeepAlive);
    };
    let (data, own_type) = match resource {
        Resource::File(path) => (
            Arc::new(tokio::fs::read(&path).await?),
            Some(content_type_for(&request.path).to_owned()),
        ),
        Resource::Bytes { data, content_type } => (data, content_type),
        Resource::LiveHls(live) => (
            Arc::new(live.playlist().into_bytes()),
            Some("application/vnd.apple.mpegurl".to_owned()),
        ),
        Resource::Icy(stream) => {
            log(200);
            return serve_icy(socket, request, &stream, &plan, head).await;
        }
    };
    let len = data.len() as u64;
    let content_type = plan.content_type.clone().unwrap_or(own_type);

    let mut headers = Vec::new();
    if let Some(t) = content_type {
        headers.push(("content-type".to_owned(), t));
    }
    if !plan.no_range {
        headers.push(("accept-ranges".to_owned(), "bytes".to_owned()));
    }
    let ask = match request.header("range") {
        Some(r) if !plan.no_range => parse_range(r, len),
        _ => RangeAsk::Whole,
    };
    let (status, start, end) = match ask {
        RangeAsk::Whole => (200, 0, len),
        RangeAsk::Part(s, e) => {
            headers.push(("content-range".to_owned(), format!("bytes {s}-{e}/{len}")));
            (206, s, e + 1)
        }
        RangeAsk::Unsatisfiable => {
            log(416);
            headers.push(("content-range".to_owned(), format!("bytes */{len}")));
            headers.push(("content-length".to_owned(), "0".to_owned()));
            socket.write_all(head(416, &headers).as_bytes()).await?;
            return Ok(After::KeepAlive);
        }
    };
    headers.push(("content-length".to_owned(), (end - start).to_string()));
    log(status);
    socket.write_all(head(status, &headers).as_bytes()).await?;
    if is_head {
        return Ok(After::KeepAlive);
    }

    // The body, cut short by a drop or a stall (whichever comes first), paced by a throttle.
    let body = &data[start as usize..end as usize];
    let cut = [plan.drop_after, plan.stall_after]
        .into_iter()
        .flatten()
        .min();
    let limit = cut.map_or(body.len(), |c| (c as usize).min(body.len()));
    let began = tokio::time::Instant::now();
    let chunk = plan
        .throttle
        .map_or(64 * 1024, |rate| ((rate / 20) as usize).clamp(1, 64 * 1024));
    let mut sent = 0usize;
    while sent < limit {
        let n = chunk.min(limit - sent);
        if let Some(rate) = plan.throttle {
            // Send chunk i no earlier than the time the rate allows for the bytes before it.
            let due = began + Duration::from_secs_f64(sent as f64 / rate as f64);
            tokio::time::sleep_until(due).await;
        }
        socket.write_all(&body[sent..sent + n]).await?;
        sent += n;
    }
    socket.flush().await?;
    if sent < body.len() {
        return Ok(if plan.stall_after.is_some_and(|s| s as usize == sent) {
            After::Stall
        } else {
            After::Close
        });
    }
    Ok(After::KeepAlive)
}

/// Streams an ICY resource until the client goes, or a scripted drop/stall.
async fn serve_icy(
    socket: &mut TcpStream,
    request: &Request,
    stream: &IcyStream,
    plan: &Plan,
    head: impl Fn(u16, &[(String, String)]) -> String,
) -> std::io::Result<After> {
    let wants_meta = request
        .header("icy-metadata")
        .is_some_and(|v| v.trim() == "1");
    let mut headers = vec![
        ("content-type".to_owned(), stream.content_type.clone()),
        ("icy-br".to_owned(), "128".to_owned()),
        ("cache-control".to_owned(), "no-cache".to_owned()),
        ("connection".to_owned(), "close".to_owned()),
    ];
    if let Some(name) = &stream.name {
        headers.push(("icy-name".to_owned(), name.clone()));
    }
    if wants_meta {
        headers.push(("icy-metaint".to_owned(), stream.metaint.to_string()));
    }
    socket.write_all(head(200, &headers).as_bytes()).await?;
    if request.method.eq_ignore_ascii_case("HEAD") {
        return Ok(After::Close);
    }
    let cut = [plan.drop_after, plan.stall_after]
        .into_iter()
        .flatten()
        .min();
    let began = tokio::time::Instant::now();
    let (mut audio_pos, mut sent_audio, mut sent_total, mut blocks) =
        (0usize, 0usize, 0u64, 0usize);
    loop {
        // The next piece: audio up to the next metadata point (at most 4 KiB).
        let until_meta = stream.metaint - sent_audio % stream.metaint;
        let n = until_meta.min(4096);
        let mut piece = Vec::with_capacity(n + 64);
        for _ in 0..n {
            piece.push(stream.audio[audio_pos]);
            audio_pos = (audio_pos + 1) % stream.audio.len();
        }
        sent_audio += n;
        if wants_meta && sent_audio % stream.metaint == 0 {
            if blocks % stream.blocks_per_title.max(1) == 0 && !stream.titles.is_empty() {
                let title =
                    &stream.titles[(blocks / stream.blocks_per_title.max(1)) % stream.titles.len()];
                let mut block = format!("StreamTitle='{title}';StreamUrl='';").into_bytes();
                block.resize(block.len().div_ceil(16) * 16, 0);
                piece.push((block.len() / 16) as u8);
                piece.extend(block);
            } else {
                piece.push(0);
            }
            blocks += 1;
        }
        if let Some(cut) = cut
            && sent_total + piece.len() as u64 >= cut
        {
            let keep = (cut - sent_total) as usize;
            socket.write_all(&piece[..keep]).await?;
            socket.flush().await?;
            return Ok(if plan.stall_after == Some(cut) {
                After::Stall
            } else {
                After::Close
            });
        }
        if sent_audio > stream.burst {
            let due = began
                + Duration::from_secs_f64((sent_audio - stream.burst) as f64 / stream.rate as f64);
            tokio::time::sleep_until(due).await;
        }
        socket.write_all(&piece).await?;
        sent_total += piece.len() as u64;
    }
}
