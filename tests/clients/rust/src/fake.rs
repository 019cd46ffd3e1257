//! The fake Discord voice server (the main workspace's `fake-discord` binary) as a child
//! process, driven over its JSON-lines control protocol on stdin/stdout. The server runs one
//! command at a time, so calls are serialised here too.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;

use crate::Res;

/// Voice credentials the fake server issued for one guild, as Discord would send them in
/// VOICE_STATE_UPDATE (`session_id`) and VOICE_SERVER_UPDATE (`token`, `endpoint`).
#[derive(Debug, Clone)]
pub struct Creds {
    pub token: String,
    pub session_id: String,
    pub endpoint: String,
}

struct Io {
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

pub struct Fake {
    _child: Child,
    io: Mutex<Io>,
    pub ca_file: PathBuf,
}

impl Fake {
    pub async fn start(bin: &str, dir: &Path) -> Res<Fake> {
        let ca_file = dir.join("fake-discord-ca.pem");
        let mut child = Command::new(bin)
            .arg("--ca-file")
            .arg(&ca_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!("cannot start {bin}: {e} (build it: cargo build -p fake-discord)")
            })?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("fake-discord exited before it was ready")?;
        let ready: Value = serde_json::from_str(&first).map_err(|e| e.to_string())?;
        if ready["event"] != "ready" {
            return Err(format!("fake-discord: unexpected first line {first}"));
        }
        Ok(Fake {
            _child: child,
            io: Mutex::new(Io {
                stdin,
                lines,
                next_id: 0,
            }),
            ca_file,
        })
    }

    /// Runs one control command; `args` is an object merged into the request.
    pub async fn call(&self, cmd: &str, args: Value) -> Res<Value> {
        let mut io = self.io.lock().await;
        io.next_id += 1;
        let mut req = if args.is_null() { json!({}) } else { args };
        req["id"] = json!(io.next_id);
        req["cmd"] = json!(cmd);
        io.stdin
            .write_all(format!("{req}\n").as_bytes())
            .await
            .map_err(|e| format!("fake-discord {cmd}: {e}"))?;
        let line = io
            .lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("fake-discord {cmd}: the server closed its output"))?;
        let reply: Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        if reply["ok"] == true {
            Ok(reply["result"].clone())
        } else {
            Err(format!("fake-discord {cmd}: {}", reply["error"]))
        }
    }

    /// Registers a voice session for the bot in `guild` (what joining a channel does).
    pub async fn register(&self, guild: u64, user: u64, channel: u64) -> Res<Creds> {
        let r = self
            .call(
                "register_session",
                json!({ "guild_id": guild, "user_id": user, "channel_id": channel }),
            )
            .await?;
        let s = |k: &str| {
            r[k].as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("register_session: no {k} in {r}"))
        };
        Ok(Creds {
            token: s("token")?,
            session_id: s("session_id")?,
            endpoint: s("endpoint")?,
        })
    }

    /// Every stream (voice connection) the guild had, oldest first, without media.
    pub async fn reports(&self, guild: u64) -> Res<Vec<Value>> {
        let r = self.call("reports", json!({ "guild_id": guild })).await?;
        r.as_array()
            .cloned()
            .ok_or_else(|| format!("reports: not a list: {r}"))
    }

    /// Packets received on the guild's current stream (0 when it has none).
    pub async fn packets(&self, guild: u64) -> Res<u64> {
        Ok(self
            .reports(guild)
            .await?
            .last()
            .and_then(|r| r["packets"].as_u64())
            .unwrap_or(0))
    }

    /// The guild's current stream with the tone analysis per window of `window_s` seconds.
    pub async fn report(&self, guild: u64, window_s: f64) -> Res<Value> {
        self.call("report", json!({ "guild_id": guild, "window_s": window_s }))
            .await
    }

    pub async fn wait_connected(&self, guild: u64, timeout_ms: u64) -> Res<bool> {
        let r = self
            .call(
                "wait_connected",
                json!({ "guild_id": guild, "timeout_ms": timeout_ms }),
            )
            .await?;
        Ok(r == true)
    }

    /// The server's event log from index `since` on.
    pub async fn events(&self, since: usize) -> Res<Vec<Value>> {
        let r = self.call("events", json!({ "since": since })).await?;
        r.as_array()
            .cloned()
            .ok_or_else(|| format!("events: not a list: {r}"))
    }
}
