//! The `fake-discord` binary: runs the fake voice server and serves its control protocol
//! (JSON lines, see `fake_discord::control`) on stdin/stdout, for tools that need the server
//! as a separate process.
//!
//! Usage: `fake-discord [--config JSON] [--ca-file PATH]`. `--config` takes a `Config` as
//! JSON (fields left out keep their defaults). The first line printed is
//! `{"event":"ready","endpoint":...,"udp_port":...,"ca_file":...}`; the process exits when
//! stdin ends or on the `shutdown` command.

use fake_discord::{Config, FakeDiscord};
use serde_json::json;
use tokio::io::{AsyncWriteExt, BufReader};

fn usage(msg: &str) -> ! {
    eprintln!("fake-discord: {msg}\nusage: fake-discord [--config JSON] [--ca-file PATH]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut config = Config::default();
    let mut ca_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => {
                let text = args
                    .next()
                    .unwrap_or_else(|| usage("--config needs a value"));
                config = serde_json::from_str(&text)
                    .unwrap_or_else(|e| usage(&format!("bad --config: {e}")));
            }
            "--ca-file" => {
                ca_file = Some(
                    args.next()
                        .unwrap_or_else(|| usage("--ca-file needs a path")),
                )
            }
            "-h" | "--help" => usage("runs a fake Discord voice server"),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let fake = match FakeDiscord::start(config).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-discord: cannot start: {e}");
            std::process::exit(1);
        }
    };
    if let Some(path) = &ca_file
        && let Err(e) = fake.write_ca_file(path)
    {
        eprintln!("fake-discord: cannot write {path}: {e}");
        std::process::exit(1);
    }
    let mut stdout = tokio::io::stdout();
    let ready = json!({
        "event": "ready",
        "endpoint": fake.endpoint(),
        "udp_port": fake.udp_addr().port(),
        "ca_file": ca_file,
    });
    let _ = stdout.write_all(format!("{ready}\n").as_bytes()).await;
    let _ = stdout.flush().await;
    if let Err(e) =
        fake_discord::control::serve(&fake, BufReader::new(tokio::io::stdin()), stdout).await
    {
        eprintln!("fake-discord: control channel: {e}");
    }
}
