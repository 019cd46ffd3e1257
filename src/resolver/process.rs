//! The warm helper process: a Python interpreter running `helper.py`, which imports yt-dlp once
//! and answers JSON-line requests on threads of its own.
//!
//! - Bounded: at most `workers + queue_capacity` requests are outstanding; more are refused at
//!   once rather than queued without limit.
//! - Timeouts: a request that gets no answer in time fails; the helper is told to drop it if it
//!   has not started. When as many requests are overdue as the helper has threads (all stuck),
//!   the process is killed and the next request starts a fresh one.
//! - Crashes: when the process exits, outstanding requests fail and the next request restarts it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::error::HelperError;
use super::locate::Interpreter;

const SCRIPT: &str = include_str!("helper.py");
/// Lines of the helper's stderr kept for the log when it dies.
const STDERR_TAIL: usize = 20;

#[derive(Debug, Clone)]
pub struct HelperConfig {
    pub interpreter: Interpreter,
    pub workers: usize,
    pub queue_capacity: usize,
    pub request_timeout: Duration,
    pub startup_timeout: Duration,
    pub socket_timeout: Duration,
    pub proxy: Option<String>,
    pub source_address: Option<std::net::IpAddr>,
    pub cache_dir: Option<PathBuf>,
    pub bandcamp_base_url: Option<String>,
}

/// Why a request got no answer from yt-dlp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The request queue is full.
    Busy,
    /// No answer within the request timeout.
    Timeout,
    /// yt-dlp failed; the helper describes how.
    Failed(HelperError),
    /// The helper could not be started, or died.
    Unavailable(String),
}

enum Reply {
    Ok(Value),
    Err(HelperError),
    Died(String),
}

struct Proc {
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    overdue: Mutex<HashSet<u64>>,
    dead: AtomicBool,
    child: Mutex<Option<Child>>,
    pid: Option<u32>,
    version: String,
}

impl Proc {
    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        if let Some(child) = self.child.lock().as_mut() {
            let _ = child.start_kill();
        }
    }

    fn fail_all(&self, why: &str) {
        let pending: Vec<_> = self.pending.lock().drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Reply::Died(why.to_string()));
        }
    }
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    id: u64,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    info: Value,
    #[serde(default)]
    error: Option<HelperError>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

pub struct Helper {
    config: HelperConfig,
    script: PathBuf,
    current: tokio::sync::Mutex<Option<Arc<Proc>>>,
    permits: Arc<Semaphore>,
    next_id: AtomicU64,
    starts: AtomicU64,
}

impl Helper {
    /// Writes the helper script to a temporary file and starts the process (waiting for it to
    /// report that yt-dlp imported). Returns the helper and yt-dlp's version.
    pub async fn start(config: HelperConfig) -> Result<(Helper, String), String> {
        let script = std::env::temp_dir().join(format!(
            "acoustic-ytdlp-helper-{}-{:016x}.py",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&script, SCRIPT).map_err(|e| {
            format!(
                "cannot write the helper script to {}: {e}",
                script.display()
            )
        })?;
        let helper = Helper {
            permits: Arc::new(Semaphore::new(config.workers + config.queue_capacity)),
            config,
            script,
            current: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
            starts: AtomicU64::new(0),
        };
        let proc = helper.process().await?;
        let version = proc.version.clone();
        Ok((helper, version))
    }

    /// The helper process id, if one is running.
    pub fn pid(&self) -> Option<u32> {
        let guard = self.current.try_lock().ok()?;
        guard
            .as_ref()
            .filter(|p| !p.dead.load(Ordering::SeqCst))
            .and_then(|p| p.pid)
    }

    /// How many helper processes were started so far (1 unless one was restarted).
    pub fn starts(&self) -> u64 {
        self.starts.load(Ordering::SeqCst)
    }

    async fn process(&self) -> Result<Arc<Proc>, String> {
        let mut guard = self.current.lock().await;
        if let Some(p) = guard.as_ref()
            && !p.dead.load(Ordering::SeqCst)
        {
            return Ok(p.clone());
        }
        if guard.is_some() {
            tracing::warn!("the yt-dlp helper is gone; starting a new one");
        }
        let p = self.spawn().await?;
        *guard = Some(p.clone());
        Ok(p)
    }

    async fn spawn(&self) -> Result<Arc<Proc>, String> {
        let c = &self.config;
        let mut cmd = Command::new(&c.interpreter.python);
        cmd.arg(&self.script)
            .arg("--workers")
            .arg(c.workers.to_string())
            .arg("--socket-timeout")
            .arg(format!("{:.3}", c.socket_timeout.as_secs_f64()));
        if let Some(p) = &c.interpreter.extra_path {
            cmd.arg("--ytdlp-path").arg(p);
        }
        if let Some(p) = &c.proxy {
            cmd.arg("--proxy").arg(p);
        }
        if let Some(a) = &c.source_address {
            cmd.arg("--source-address").arg(a.to_string());
        }
        if let Some(d) = &c.cache_dir {
            cmd.arg("--cache-dir").arg(d);
        }
        if let Some(b) = &c.bandcamp_base_url {
            cmd.arg("--bandcamp-base").arg(b);
        }
        cmd.env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {} ({}): {e}",
                c.interpreter.python.display(),
                c.interpreter.origin
            )
        })?;
        let pid = child.id();
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");

        let tail = Arc::new(Mutex::new(VecDeque::<String>::new()));
        let tail_w = tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line: String = line.chars().take(2000).collect();
                tracing::debug!(target: "acoustic::resolver::yt_dlp", "{line}");
                let mut t = tail_w.lock();
                if t.len() == STDERR_TAIL {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });

        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(c.startup_timeout, lines.next_line()).await;
        let ready: Line = match first {
            Err(_) => {
                let _ = child.start_kill();
                return Err(format!(
                    "the yt-dlp helper did not start within {} s",
                    c.startup_timeout.as_secs()
                ));
            }
            Ok(Ok(Some(line))) => serde_json::from_str(&line)
                .map_err(|e| format!("the yt-dlp helper said something odd ({e}): {line}"))?,
            Ok(_) => {
                let status = child.wait().await.ok();
                let tail: Vec<String> = tail.lock().iter().cloned().collect();
                return Err(format!(
                    "{} exited at start ({}){}",
                    c.interpreter.python.display(),
                    status.map_or("unknown status".into(), |s| s.to_string()),
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", tail.join(" | "))
                    }
                ));
            }
        };
        match ready.event.as_deref() {
            Some("ready") => {}
            _ => {
                let _ = child.start_kill();
                return Err(ready
                    .message
                    .unwrap_or_else(|| "the yt-dlp helper did not report ready".into()));
            }
        }
        let version = ready.version.unwrap_or_default();
        self.starts.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(pid, version, "yt-dlp helper ready");

        let proc = Arc::new(Proc {
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            overdue: Mutex::new(HashSet::new()),
            dead: AtomicBool::new(false),
            child: Mutex::new(Some(child)),
            pid,
            version,
        });
        let reader = proc.clone();
        tokio::spawn(async move {
            loop {
                let line = match lines.next_line().await {
                    Ok(Some(line)) => line,
                    Ok(None) | Err(_) => break,
                };
                let parsed: Line = match serde_json::from_str(&line) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!("unreadable line from the yt-dlp helper: {e}");
                        continue;
                    }
                };
                let reply = match (parsed.ok, parsed.error) {
                    (Some(true), _) => Reply::Ok(parsed.info),
                    (_, Some(err)) => Reply::Err(err),
                    _ => continue,
                };
                let tx = reader.pending.lock().remove(&parsed.id);
                match tx {
                    Some(tx) => {
                        let _ = tx.send(reply);
                    }
                    None => {
                        reader.overdue.lock().remove(&parsed.id);
                    }
                }
            }
            let was_killed = reader.dead.swap(true, Ordering::SeqCst);
            let child = reader.child.lock().take();
            let status = match child {
                Some(mut child) => {
                    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                        Ok(Ok(s)) => s.to_string(),
                        _ => {
                            let _ = child.start_kill();
                            "did not exit".to_string()
                        }
                    }
                }
                None => "unknown".to_string(),
            };
            let why = format!("the yt-dlp helper exited ({status})");
            if !was_killed {
                let tail: Vec<String> = tail.lock().iter().cloned().collect();
                tracing::warn!(pid = reader.pid, "{why}; last output: {}", tail.join(" | "));
            }
            reader.fail_all(&why);
        });
        Ok(proc)
    }

    /// Sends one request and waits for its answer.
    pub async fn request(&self, mut req: Value) -> Result<Value, RequestError> {
        let permit: OwnedSemaphorePermit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| RequestError::Busy)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        req["id"] = json!(id);
        let mut line = serde_json::to_string(&req).expect("a JSON value serializes");
        line.push('\n');
        // A helper that died since the last request is noticed here at the latest (the write
        // fails): then one fresh helper is started and the request sent again.
        let mut attempt = 0;
        let (proc, rx) = loop {
            attempt += 1;
            let proc = self.process().await.map_err(RequestError::Unavailable)?;
            let (tx, rx) = oneshot::channel();
            proc.pending.lock().insert(id, tx);
            let written = {
                let mut stdin = proc.stdin.lock().await;
                match stdin.write_all(line.as_bytes()).await {
                    Ok(()) => stdin.flush().await,
                    Err(e) => Err(e),
                }
            };
            match written {
                Ok(()) => break (proc, rx),
                Err(e) => {
                    proc.pending.lock().remove(&id);
                    proc.kill();
                    if attempt >= 2 {
                        return Err(RequestError::Unavailable(format!(
                            "cannot write to the yt-dlp helper: {e}"
                        )));
                    }
                }
            }
        };
        let result = tokio::time::timeout(self.config.request_timeout, rx).await;
        drop(permit);
        match result {
            Ok(Ok(Reply::Ok(info))) => Ok(info),
            Ok(Ok(Reply::Err(e))) => Err(RequestError::Failed(e)),
            Ok(Ok(Reply::Died(why))) => Err(RequestError::Unavailable(why)),
            Ok(Err(_)) => Err(RequestError::Unavailable(
                "the yt-dlp helper went away".into(),
            )),
            Err(_) => {
                proc.pending.lock().remove(&id);
                let stuck = {
                    let mut overdue = proc.overdue.lock();
                    overdue.insert(id);
                    overdue.len()
                };
                let cancel = format!("{{\"id\":0,\"op\":\"cancel\",\"target\":{id}}}\n");
                if let Ok(mut stdin) =
                    tokio::time::timeout(Duration::from_secs(1), proc.stdin.lock()).await
                {
                    let _ = stdin.write_all(cancel.as_bytes()).await;
                    let _ = stdin.flush().await;
                }
                if stuck >= self.config.workers {
                    tracing::warn!(
                        stuck,
                        "every yt-dlp helper thread is stuck on an overdue request; restarting it"
                    );
                    proc.kill();
                }
                Err(RequestError::Timeout)
            }
        }
    }

    /// Stops the helper process (a later request starts a new one).
    pub fn kill(&self) {
        if let Ok(guard) = self.current.try_lock()
            && let Some(p) = guard.as_ref()
        {
            p.kill();
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.script);
    }
}
