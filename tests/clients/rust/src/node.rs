//! One Acoustic node as a child process: its own application.yml in a temporary folder, a free
//! port chosen by the node (port 0; the address is read from its "listening on" log line), and
//! SSL_CERT_FILE pointing at the fake Discord server's CA so that the node trusts its wss://.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::{PASSWORD, Res};

pub struct Node {
    _child: Child,
    /// `host:port` of the node's REST and WebSocket server.
    pub addr: String,
    pub log: PathBuf,
}

impl Node {
    pub async fn start(bin: &str, dir: &Path, ca_file: &Path) -> Res<Node> {
        let config = dir.join("application.yml");
        std::fs::write(
            &config,
            format!(
                "server:\n  port: 0\n  address: 127.0.0.1\nlavalink:\n  server:\n    \
                 password: \"{PASSWORD}\"\n    playerUpdateInterval: 1\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = dir.join("node.log");
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .current_dir(dir)
            .env("SSL_CERT_FILE", ca_file)
            .env(
                "RUST_LOG",
                std::env::var("ACOUSTIC_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!("cannot start {bin}: {e} (build it: cargo build --bin acoustic)")
            })?;
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        pump(child.stdout.take().expect("piped"), tx.clone());
        pump(child.stderr.take().expect("piped"), tx);
        let echo = std::env::var_os("ACOUSTIC_TEST_LOG").is_some();
        let mut file = tokio::fs::File::create(&log)
            .await
            .map_err(|e| e.to_string())?;
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = rx.recv().await {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
                if echo {
                    eprintln!("[node] {line}");
                }
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return rest.split_whitespace().next().map(str::to_owned);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("the node did not start; log in {}", log.display()))?;
        // Keep writing the log until the node exits.
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
                if echo {
                    eprintln!("[node] {line}");
                }
            }
        });
        Ok(Node {
            _child: child,
            addr,
            log,
        })
    }
}

fn pump(stream: impl AsyncRead + Unpin + Send + 'static, tx: mpsc::UnboundedSender<String>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}
