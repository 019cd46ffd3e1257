//! `acoustic`: start-up, command line, logging, and graceful shutdown.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use acoustic::config::Config;
use acoustic::node::Node;

const USAGE: &str = "\
acoustic — a Lavalink v4 compatible audio node

USAGE:
    acoustic [--config PATH]

OPTIONS:
    -c, --config PATH   application.yml to read (default: ./application.yml)
    -h, --help          print this help
    -V, --version       print the version

Every setting can be overridden from the environment with Spring's naming rule,
e.g. SERVER_PORT=2334 or LAVALINK_SERVER_PASSWORD=secret.";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut config_path = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!(
                    "acoustic {} (Lavalink {})",
                    env!("CARGO_PKG_VERSION"),
                    acoustic::node::LAVALINK_VERSION
                );
                return ExitCode::SUCCESS;
            }
            "-c" | "--config" => match args.next() {
                Some(p) => config_path = Some(PathBuf::from(p)),
                None => {
                    eprintln!("--config needs a path\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            other => {
                if let Some(p) = other.strip_prefix("--config=") {
                    config_path = Some(PathBuf::from(p));
                } else {
                    eprintln!("unknown argument `{other}`\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    let explicit = config_path.is_some();
    let path = config_path.unwrap_or_else(|| PathBuf::from("application.yml"));
    let config = match Config::load(&path, explicit) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("acoustic: configuration error: {e}");
            return ExitCode::from(78);
        }
    };
    acoustic::logging::init(&config);
    for key in &config.unknown_keys {
        tracing::warn!("ignoring unknown configuration key `{key}`");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("acoustic: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(config));
    // Do not wait for blocking tasks (a stalled source read) at exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

async fn run(config: Config) -> ExitCode {
    let addr = std::net::SocketAddr::new(config.address, config.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let node = match Node::new(config) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("acoustic: configuration error: {e}");
            return ExitCode::from(78);
        }
    };
    node.spawn_minute_roller();
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        "Acoustic {} listening on {local} (Lavalink protocol v4)",
        env!("CARGO_PKG_VERSION")
    );

    let app = acoustic::api::router(node.clone());
    let shutdown_node = node.clone();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        // Whatever happens, be gone within two seconds of the signal.
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(1900));
            tracing::warn!("shutdown took too long; exiting now");
            std::process::exit(0);
        });
        shutdown_node.shutdown().await;
    });
    if let Err(e) = serve.await {
        tracing::error!("server error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
