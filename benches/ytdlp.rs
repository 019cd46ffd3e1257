//! Cold versus warm yt-dlp resolution, on loopback.
//!
//! - cold: one `yt-dlp -J` process per request (what a resolver that shells out pays: Python
//!   start-up, importing yt-dlp, loading its extractors);
//! - warm: `YtDlpResolver::fallback` through the long-lived helper, cache disabled, so every
//!   iteration is a real yt-dlp extraction.
//!
//! Each is measured for a direct media URL and for an HTML page with an `<audio>` tag (the
//! generic extractor's heavier path). Target: a warm load within 300 ms.
//!
//! yt-dlp comes from `ACOUSTIC_YTDLP_PYTHON`, else `tests/tools/install-ytdlp.sh` installs it;
//! without it the benchmark says so and measures nothing.
//! Run: `cargo bench --bench ytdlp`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use acoustic::resolver::{YtDlpResolver, YtDlpSettings};
use acoustic::sources::LoadedItem;
use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use criterion::{Criterion, SamplingMode};

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ACOUSTIC_YTDLP_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/install-ytdlp.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("ACOUSTIC_YTDLP_PYTHON=").map(PathBuf::from))
}

/// A short silent MP3-like body is enough: yt-dlp decides from the Content-Type.
fn media() -> Vec<u8> {
    let mut v = b"ID3\x04\0\0\0\0\0\0".to_vec();
    v.resize(16 * 1024, 0);
    v
}

async fn serve() -> String {
    let body = media();
    let app = Router::new()
        .route(
            "/media/{name}",
            get(move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, "audio/mpeg")], body).into_response() }
            }),
        )
        .route(
            "/page.html",
            get(|| async {
                Html(
                    "<!doctype html><html><head><title>Bench page</title></head><body>\
                     <audio controls src=\"/media/a.mp3\"></audio></body></html>",
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn main() {
    let Some(py) = python() else {
        eprintln!("yt-dlp could not be installed; nothing measured");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = rt.block_on(serve());
    let resolver = rt
        .block_on(YtDlpResolver::detect(YtDlpSettings {
            python: Some(py.clone()),
            cache_ttl: Duration::ZERO,
            workers: 2,
            ..YtDlpSettings::default()
        }))
        .expect("yt-dlp found");
    let ytdlp_bin = py.with_file_name("yt-dlp");

    let mut c = Criterion::default().configure_from_args();
    let n = AtomicU64::new(0);
    for (name, path) in [
        ("direct media URL", "/media/a.mp3"),
        ("HTML page", "/page.html"),
    ] {
        let mut group = c.benchmark_group(format!("ytdlp resolve {name}"));
        group.sampling_mode(SamplingMode::Flat);

        group.sample_size(20);
        group.measurement_time(Duration::from_secs(5));
        group.bench_function("warm helper", |b| {
            b.iter(|| {
                // a fresh query string each time: nothing is reused between iterations
                let url = format!("{base}{path}?n={}", n.fetch_add(1, Ordering::Relaxed));
                let item = rt.block_on(resolver.fallback(&url));
                assert!(matches!(item, Some(LoadedItem::Track(_))));
            })
        });

        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(1));
        group.measurement_time(Duration::from_secs(20));
        group.bench_function("cold yt-dlp process", |b| {
            b.iter(|| {
                let url = format!("{base}{path}?n={}", n.fetch_add(1, Ordering::Relaxed));
                let mut cmd = if ytdlp_bin.exists() {
                    std::process::Command::new(&ytdlp_bin)
                } else {
                    let mut c = std::process::Command::new(&py);
                    c.args(["-m", "yt_dlp"]);
                    c
                };
                let out = cmd
                    .args(["-J", "--no-warnings", "--no-cache-dir", &url])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            })
        });
        group.finish();
    }
    c.final_summary();
}
