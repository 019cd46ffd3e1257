//! Starts the real `acoustic` binary on a free port for black-box tests, with an HTTP client
//! that sends the password and a WebSocket client that reads Lavalink messages.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const PASSWORD: &str = "youshallnotpass";

/// A running node.
pub struct TestNode {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    http: reqwest::Client,
    /// Lines the node logged (collected in the background).
    pub log: std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
}

/// Options for [`TestNode::start_with`].
#[derive(Default, Clone)]
pub struct NodeOptions {
    /// Extra YAML appended under `lavalink.server:` (indented by the caller with 4 spaces).
    pub server_yaml: String,
    /// Extra top-level YAML.
    pub top_yaml: String,
    pub env: Vec<(String, String)>,
}

fn unique_dir() -> PathBuf {
    let n = rand::random::<u64>();
    let dir = std::env::temp_dir().join(format!("acoustic-test-{n:016x}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(NodeOptions::default()).await
    }

    pub async fn start_with(opts: NodeOptions) -> TestNode {
        let dir = unique_dir();
        let yaml = format!(
            "server:\n  port: 0\n  address: 127.0.0.1\nlavalink:\n  server:\n    password: \"{PASSWORD}\"\n{}\n{}\n",
            opts.server_yaml, opts.top_yaml
        );
        let config = dir.join("application.yml");
        std::fs::write(&config, yaml).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acoustic"));
        cmd.arg("--config")
            .arg(&config)
            .current_dir(&dir)
            .env("RUST_LOG", "info,acoustic=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start acoustic");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
        let (addr_tx, mut addr_rx) = tokio::sync::mpsc::unbounded_channel::<SocketAddr>();
        for stream in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(stderr),
        ] {
            let log = log.clone();
            let addr_tx = addr_tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(rest) = line.split("listening on ").nth(1)
                        && let Some(a) = rest.split_whitespace().next()
                        && let Ok(addr) = a.parse()
                    {
                        let _ = addr_tx.send(addr);
                    }
                    if std::env::var("ACOUSTIC_TEST_LOG").is_ok() {
                        eprintln!("[node] {line}");
                    }
                    log.lock().push(line);
                }
            });
        }
        let addr = tokio::time::timeout(Duration::from_secs(20), addr_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("node did not start; log: {:?}", log.lock()))
            .unwrap_or_else(|| panic!("node exited; log: {:?}", log.lock()));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("Authorization", PASSWORD.parse().unwrap());
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        TestNode {
            child,
            addr,
            dir,
            http,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// An HTTP client that sends the password.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn patch_json(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Connects a client WebSocket as a bot would.
    pub async fn ws(&self) -> WsClient {
        self.ws_with(&[("User-Id", "1234"), ("Client-Name", "acoustic-tests/1.0")])
            .await
    }

    pub async fn ws_with(&self, headers: &[(&str, &str)]) -> WsClient {
        let mut req = format!("ws://{}/v4/websocket", self.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Authorization", PASSWORD.parse().unwrap());
        for (k, v) in headers {
            let name =
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
            req.headers_mut().insert(name, v.parse().unwrap());
        }
        let (stream, resp) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connect");
        let resumed = resp
            .headers()
            .get("Session-Resumed")
            .map(|v| v.to_str().unwrap().to_string());
        let mut ws = WsClient {
            stream,
            session_id: String::new(),
            resumed_header: resumed,
            backlog: Vec::new(),
        };
        let ready = ws.expect_op("ready", Duration::from_secs(5)).await;
        ws.session_id = ready["sessionId"].as_str().unwrap().to_string();
        ws.backlog.insert(0, ready);
        ws
    }

    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client WebSocket connection.
pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub session_id: String,
    pub resumed_header: Option<String>,
    /// Messages read but not yet consumed by an `expect_*`.
    backlog: Vec<Value>,
}

impl WsClient {
    /// The next JSON message, or `None` on timeout/close.
    pub async fn next_json(&mut self, timeout: Duration) -> Option<Value> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(t) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server sent JSON"));
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Waits for a message matching `pred`, keeping the others for later.
    pub async fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(msg) = self.next_json_raw(left).await else {
                panic!("timed out waiting for {what}; saw {skipped:?}");
            };
            if pred(&msg) {
                self.backlog.extend(skipped);
                return msg;
            }
            skipped.push(msg);
        }
    }

    async fn next_json_raw(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??
                .ok()?;
            if let Message::Text(t) = msg {
                return Some(serde_json::from_str(t.as_str()).expect("server sent JSON"));
            }
        }
    }

    pub async fn expect_op(&mut self, op: &str, timeout: Duration) -> Value {
        let op = op.to_string();
        self.expect(&format!("op {op}"), timeout, move |m| {
            m["op"] == op.as_str()
        })
        .await
    }

    pub async fn expect_event(&mut self, ty: &str, timeout: Duration) -> Value {
        let ty = ty.to_string();
        self.expect(&format!("event {ty}"), timeout, move |m| {
            m["op"] == "event" && m["type"] == ty.as_str()
        })
        .await
    }

    /// Every message that arrives within `window` (plus the backlog).
    pub async fn collect(&mut self, window: Duration) -> Vec<Value> {
        let mut out = std::mem::take(&mut self.backlog);
        let deadline = tokio::time::Instant::now() + window;
        while let Some(m) = self
            .next_json_raw(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            out.push(m);
        }
        out
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
