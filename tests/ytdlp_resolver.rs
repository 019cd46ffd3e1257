//! The yt-dlp resolver against the real yt-dlp, installed from PyPI into a private virtual
//! environment by `tests/tools/install-ytdlp.sh` (or taken from `ACOUSTIC_YTDLP_PYTHON`).
//! Everything is served on 127.0.0.1: a WAV file, HTML pages with `<audio src>` and `og:audio`,
//! a page with two players, a slow resource, a Bandcamp-like search page. What cannot be reached
//! from here (YouTube, SoundCloud, … themselves) is covered by the unit tests of our side of the
//! contract in `src/resolver/`, and here by sending those lookups to a closed port, which shows
//! the real extractors run and their failures become Lavalink exceptions.
//!
//! If yt-dlp cannot be installed (no Python, no package index), the tests say so loudly and
//! pass without checking anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use acoustic::protocol::load::Severity;
use acoustic::protocol::track_codec::{DetailsLayout, decode_track, encode_track};
use acoustic::resolver::{StreamProtocol, YtDlpResolver, YtDlpSettings, YtDlpSources};
use acoustic::sources::LoadedItem;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

// ------------------------------------------------------------------ yt-dlp

/// The venv's interpreter, installing yt-dlp on first use; `None` (after a loud message) when
/// that is impossible here.
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("ACOUSTIC_YTDLP_PYTHON") {
                return Some(PathBuf::from(p));
            }
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/install-ytdlp.sh");
            let out = std::process::Command::new("bash")
                .arg(script)
                .stderr(std::process::Stdio::inherit())
                .output();
            let found = out.ok().filter(|o| o.status.success()).and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .rev()
                    .find_map(|l| l.strip_prefix("ACOUSTIC_YTDLP_PYTHON=").map(PathBuf::from))
            });
            if found.is_none() {
                eprintln!(
                    "\n\n*** SKIPPED: yt-dlp could not be installed ({script} failed); \
                     the yt-dlp resolver was NOT tested against the real yt-dlp ***\n\n"
                );
            }
            found
        })
        .clone()
}

fn settings(python: PathBuf) -> YtDlpSettings {
    YtDlpSettings {
        python: Some(python),
        workers: 2,
        request_timeout: Duration::from_secs(60),
        socket_timeout: Duration::from_secs(20),
        sources: YtDlpSources {
            niconico: true,
            ..YtDlpSources::default()
        },
        ..YtDlpSettings::default()
    }
}

// ------------------------------------------------------------------ loopback site

/// One second of a 440 Hz sine, 16-bit mono PCM at 22.05 kHz, as a WAV file.
fn tone_wav() -> Vec<u8> {
    let rate = 22_050u32;
    let samples: Vec<i16> = (0..rate)
        .map(|i| {
            let t = i as f64 / rate as f64;
            ((t * 440.0 * std::f64::consts::TAU).sin() * 12_000.0) as i16
        })
        .collect();
    let data_len = samples.len() as u32 * 2;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

#[derive(Clone)]
struct Site {
    wav: Arc<Vec<u8>>,
    /// (path, user agent) of every request.
    hits: Arc<Mutex<Vec<(String, String)>>>,
    base: Arc<OnceLock<String>>,
}

impl Site {
    fn hits_of(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    }
}

async fn record(State(site): State<Site>, uri: Uri, headers: HeaderMap) -> Site {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    site.hits.lock().unwrap().push((uri.path().to_string(), ua));
    site
}

async fn wav(state: State<Site>, uri: Uri, headers: HeaderMap) -> Response {
    let site = record(state, uri, headers).await;
    (
        [(header::CONTENT_TYPE, "audio/wav")],
        site.wav.as_ref().clone(),
    )
        .into_response()
}

async fn page(state: State<Site>, uri: Uri, headers: HeaderMap) -> Html<String> {
    let path = uri.path().to_string();
    let site = record(state, uri, headers).await;
    let base = site.base.get().cloned().unwrap_or_default();
    Html(match path.as_str() {
        "/page.html" => "<!doctype html><html><head><title>Tone page</title></head><body>\
             <h1>Listen</h1><audio controls src=\"/media/tone.wav\"></audio></body></html>"
            .to_string(),
        "/og.html" => format!(
            "<!doctype html><html><head><title>OG page</title>\
             <meta property=\"og:title\" content=\"Sine at 440 Hz\">\
             <meta property=\"og:audio\" content=\"{base}/media/og-tone.wav\">\
             <meta property=\"og:audio:type\" content=\"audio/wav\"></head>\
             <body><p>An article with an audio clip.</p></body></html>"
        ),
        "/multi.html" => "<!doctype html><html><head><title>Two tones</title></head><body>\
             <audio src=\"/media/one.wav\"></audio><audio src=\"/media/two.wav\"></audio>\
             </body></html>"
            .to_string(),
        _ => "<!doctype html><html><head><title>Nothing</title></head><body>\
              <p>No media on this page.</p></body></html>"
            .to_string(),
    })
}

async fn slow(state: State<Site>, uri: Uri, headers: HeaderMap) -> Response {
    record(state, uri, headers).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    (StatusCode::OK, "late").into_response()
}

/// A page shaped like Bandcamp's search results (two tracks and an album on page 1).
async fn bandcamp_search(
    state: State<Site>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Html<String> {
    record(state, uri, headers).await;
    let item = |kind: &str, title: &str, sub: &str, url: &str, art: &str| {
        format!(
            "<li class=\"searchresult data-search\">\
             <a class=\"artcont\" href=\"{url}?from=search\"><div class=\"art\"><img src=\"{art}\"></div></a>\
             <div class=\"result-info\"><div class=\"itemtype\">\n  {kind}\n</div>\
             <div class=\"heading\"><a href=\"{url}?from=search\">\n  {title}\n</a></div>\
             <div class=\"subhead\">\n  {sub}\n</div>\
             <div class=\"itemurl\"><a href=\"{url}?from=search\">{url}</a></div></div></li>"
        )
    };
    let page: u32 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let items = if page == 1 && q.get("item_type").map(String::as_str) == Some("t") {
        [
            item(
                "TRACK",
                "Sine Wave",
                "from Test Tones by The Oscillators",
                "https://oscillators.bandcamp.com/track/sine-wave",
                "https://f4.bcbits.com/img/a0123456789_7.jpg",
            ),
            item(
                "ALBUM",
                "Test Tones",
                "by The Oscillators",
                "https://oscillators.bandcamp.com/album/test-tones",
                "https://f4.bcbits.com/img/a0123456789_7.jpg",
            ),
            item(
                "TRACK",
                "Square Wave",
                "from Test Tones by The Oscillators, feat. Someone",
                "https://oscillators.bandcamp.com/track/square-wave",
                "https://f4.bcbits.com/img/a0000000042_7.jpg",
            ),
        ]
        .join("\n")
    } else {
        String::new()
    };
    Html(format!(
        "<html><body><ul class=\"result-items\">{items}</ul></body></html>"
    ))
}

async fn serve() -> (String, Site) {
    let site = Site {
        wav: Arc::new(tone_wav()),
        hits: Arc::default(),
        base: Arc::default(),
    };
    let app = Router::new()
        .route("/media/{name}", get(wav))
        .route("/page.html", get(page))
        .route("/og.html", get(page))
        .route("/multi.html", get(page))
        .route("/plain.html", get(page))
        .route("/slow.wav", get(slow))
        .route("/bandcamp/search", get(bandcamp_search))
        .with_state(site.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    site.base.set(base.clone()).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, site)
}

fn track(item: Option<LoadedItem>) -> acoustic::sources::TrackData {
    match item {
        Some(LoadedItem::Track(t)) => t,
        Some(LoadedItem::Error(e)) => panic!("expected a track, got error {e:?}"),
        Some(_) => panic!("expected a track, got another result"),
        None => panic!("expected a track, got no claim"),
    }
}

async fn fetch(target: &acoustic::resolver::StreamTarget) -> Vec<u8> {
    let client = reqwest::Client::new();
    let mut req = client.get(&target.url);
    for (k, v) in &target.headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.bytes().await.unwrap().to_vec()
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_extractor_resolves_media_urls_and_pages() {
    let Some(py) = python() else { return };
    let (base, site) = serve().await;
    let resolver = YtDlpResolver::detect(YtDlpSettings {
        bandcamp_base_url: Some(format!("{base}/bandcamp")),
        ..settings(py)
    })
    .await
    .expect("yt-dlp is installed, so detect() finds it");
    assert!(!resolver.version().is_empty());
    assert_eq!(
        resolver.source_names(),
        [
            "youtube",
            "soundcloud",
            "bandcamp",
            "twitch",
            "vimeo",
            "niconico"
        ]
    );
    assert_eq!(
        resolver.details_layout("youtube"),
        Some(DetailsLayout::Empty)
    );
    assert_eq!(resolver.details_layout("ytdlp"), Some(DetailsLayout::Empty));
    assert_eq!(resolver.details_layout("http"), None);

    // Plain URLs are not claimed by load(): they are the http source's.
    assert!(
        resolver
            .load(&format!("{base}/media/tone.wav"))
            .await
            .is_none()
    );

    // A direct media URL.
    let direct = format!("{base}/media/tone.wav");
    let t = track(resolver.fallback(&direct).await);
    assert_eq!(t.info.source_name, "ytdlp");
    assert_eq!(t.info.identifier, direct);
    assert_eq!(t.info.uri.as_deref(), Some(direct.as_str()));
    let target = resolver.stream(&t).await.expect("a stream");
    assert_eq!(target.url, direct);
    assert_eq!(target.protocol, StreamProtocol::Http);
    assert_eq!(target.container.as_deref(), Some("wav"));
    assert_eq!(target.mime(), Some("audio/wav"));
    assert!(target.headers.iter().any(|(k, _)| k == "User-Agent"));
    assert_eq!(
        fetch(&target).await,
        *site.wav,
        "the resolved URL serves the audio"
    );

    // An HTML page with an <audio src>.
    let page = format!("{base}/page.html");
    let t = track(resolver.fallback(&page).await);
    assert_eq!(
        (t.info.source_name.as_str(), t.info.identifier.as_str()),
        ("ytdlp", page.as_str())
    );
    assert!(t.info.title.starts_with("Tone page"), "{}", t.info.title);
    let target = resolver.stream(&t).await.expect("a stream");
    assert_eq!(target.url, direct);
    assert!(
        target
            .headers
            .iter()
            .any(|(k, v)| k == "Referer" && v == &page),
        "{:?}",
        target.headers
    );
    assert_eq!(fetch(&target).await, *site.wav);
    let ua = site
        .hits
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| p == "/page.html")
        .unwrap()
        .1
        .clone();
    assert!(
        ua.starts_with("Mozilla/"),
        "yt-dlp fetched the page itself: {ua}"
    );

    // Resolutions are cached: the same page again does not reach the server.
    let before = site.hits_of("/page.html");
    let again = track(resolver.fallback(&page).await);
    assert_eq!(again, t);
    assert_eq!(site.hits_of("/page.html"), before);

    // The track survives Lavalink's encoding.
    let encoded = encode_track(&t.info, &t.details);
    let decoded = decode_track(&encoded, |s| resolver.details_layout(s)).unwrap();
    assert_eq!(decoded.info, t.info);

    // An og:audio page.
    let t = track(resolver.fallback(&format!("{base}/og.html")).await);
    assert_eq!(t.info.title, "Sine at 440 Hz");
    let target = resolver.stream(&t).await.unwrap();
    assert_eq!(target.url, format!("{base}/media/og-tone.wav"));
    assert_eq!(fetch(&target).await, *site.wav);

    // Two players on a page: a playlist whose tracks each play.
    let multi = format!("{base}/multi.html");
    match resolver.fallback(&multi).await {
        Some(LoadedItem::Playlist {
            name,
            selected_track,
            tracks,
        }) => {
            assert_eq!(name, "Two tones");
            assert_eq!(selected_track, -1);
            let ids: Vec<_> = tracks.iter().map(|t| t.info.identifier.clone()).collect();
            assert_eq!(
                ids,
                [
                    format!("{base}/media/one.wav"),
                    format!("{base}/media/two.wav")
                ]
            );
            let target = resolver.stream(&tracks[1]).await.unwrap();
            assert_eq!(target.url, format!("{base}/media/two.wav"));
        }
        _ => panic!("expected a playlist"),
    }

    // A page without media is not ours; a missing one is empty.
    assert!(
        resolver
            .fallback(&format!("{base}/plain.html"))
            .await
            .is_none()
    );
    assert!(matches!(
        resolver.fallback(&format!("{base}/missing.wav")).await,
        Some(LoadedItem::Empty)
    ));
    assert!(resolver.fallback("ftp://example.com/a.mp3").await.is_none());

    // bcsearch: through the Bandcamp search extractor the helper adds to yt-dlp.
    match resolver.load("bcsearch:sine").await {
        Some(LoadedItem::Search(tracks)) => {
            assert_eq!(tracks.len(), 2, "tracks only, like Lavalink");
            let t = &tracks[0].info;
            assert_eq!(t.source_name, "bandcamp");
            assert_eq!(
                t.identifier,
                "https://oscillators.bandcamp.com/track/sine-wave"
            );
            assert_eq!(t.title, "Sine Wave");
            assert_eq!(t.author, "The Oscillators");
            assert_eq!(t.length, i64::MAX);
            assert!(!t.is_stream);
            assert_eq!(
                t.artwork_url.as_deref(),
                Some("https://f4.bcbits.com/img/a0123456789_1.png")
            );
            assert_eq!(tracks[1].info.author, "The Oscillators");
        }
        _ => panic!("expected search results"),
    }
    assert!(site.hits_of("/bandcamp/search") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_queue_timeouts_and_restarts() {
    let Some(py) = python() else { return };
    let (base, _site) = serve().await;
    let resolver = YtDlpResolver::detect(YtDlpSettings {
        workers: 1,
        queue_capacity: 1,
        request_timeout: Duration::from_secs(3),
        socket_timeout: Duration::from_secs(60),
        cache_ttl: Duration::ZERO,
        ..settings(py)
    })
    .await
    .unwrap();
    assert_eq!(resolver.helper_starts(), 1);
    let first_pid = resolver.helper_pid().expect("running");

    // One thread, one queue slot: of three concurrent lookups of a URL that never answers, one
    // is refused at once and the others time out.
    let slow = format!("{base}/slow.wav");
    let (a, b, c) = tokio::join!(
        resolver.fallback(&slow),
        resolver.fallback(&slow),
        resolver.fallback(&slow)
    );
    let errors: Vec<_> = [a, b, c]
        .into_iter()
        .map(|r| match r {
            Some(LoadedItem::Error(e)) => e,
            _ => panic!("expected errors"),
        })
        .collect();
    let busy = errors
        .iter()
        .filter(|e| e.message.as_deref().unwrap().starts_with("Too many tracks"))
        .count();
    let timed_out = errors
        .iter()
        .filter(|e| e.message.as_deref() == Some("Looking up the track took too long."))
        .count();
    assert_eq!(busy, 1, "{errors:?}");
    assert!(timed_out >= 1, "{errors:?}");
    assert!(errors.iter().all(|e| e.severity != Severity::Common));

    // The only thread was stuck, so the helper was replaced; lookups work again.
    let t = track(resolver.fallback(&format!("{base}/media/tone.wav")).await);
    assert_eq!(t.info.source_name, "ytdlp");
    assert_eq!(resolver.helper_starts(), 2);
    let second_pid = resolver.helper_pid().unwrap();
    assert_ne!(first_pid, second_pid);

    // A helper that crashes is restarted by the next lookup.
    unsafe { libc::kill(second_pid as i32, libc::SIGKILL) };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = track(resolver.fallback(&format!("{base}/page.html")).await);
    assert_eq!(t.info.source_name, "ytdlp");
    assert_eq!(resolver.helper_starts(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_sites_become_lavalink_errors() {
    let Some(py) = python() else { return };
    // Every request yt-dlp makes goes to a proxy port where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let resolver = YtDlpResolver::detect(YtDlpSettings {
        proxy: Some(format!("http://127.0.0.1:{port}")),
        ..settings(py)
    })
    .await
    .unwrap();
    for (identifier, site) in [
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "YouTube"),
        ("ytsearch:never gonna give you up", "YouTube"),
        ("https://soundcloud.com/artist/a-track", "SoundCloud"),
        ("https://artist.bandcamp.com/track/a-track", "Bandcamp"),
        ("https://vimeo.com/76979871", "Vimeo"),
    ] {
        match resolver.load(identifier).await {
            Some(LoadedItem::Error(e)) => {
                assert_eq!(e.severity, Severity::Suspicious, "{identifier}: {e:?}");
                let m = e.message.unwrap();
                assert!(m.contains(site), "{identifier}: {m}");
                assert!(e.cause.starts_with("YtDlpException: "), "{}", e.cause);
            }
            _ => panic!("{identifier}: expected an error"),
        }
    }
    // Claimed but empty without asking yt-dlp; not claimed at all.
    assert!(matches!(
        resolver.load("ytsearch:   ").await,
        Some(LoadedItem::Empty)
    ));
    assert!(resolver.load("spsearch:abc").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_sources_and_searches_fall_through() {
    let Some(py) = python() else { return };
    let resolver = YtDlpResolver::detect(YtDlpSettings {
        sources: YtDlpSources {
            youtube: false,
            twitch: false,
            ..YtDlpSources::default()
        },
        soundcloud_search_enabled: false,
        ..settings(py)
    })
    .await
    .unwrap();
    assert_eq!(resolver.source_names(), ["soundcloud", "bandcamp", "vimeo"]);
    for id in [
        "dQw4w9WgXcQ",
        "ytsearch:a",
        "https://youtu.be/dQw4w9WgXcQ",
        "scsearch:a",
        "https://www.twitch.tv/chan",
        "https://www.nicovideo.jp/watch/sm9",
    ] {
        assert!(resolver.load(id).await.is_none(), "{id}");
    }
    assert!(!resolver.plays("youtube"));
    assert!(resolver.plays("soundcloud"));
}

#[tokio::test]
async fn missing_ytdlp_is_reported_not_fatal() {
    let dir = std::env::temp_dir().join(format!("acoustic-no-ytdlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let native = dir.join("yt-dlp_linux");
    std::fs::write(&native, b"\x7fELF\x02\x01\x01\0not python").unwrap();
    for s in [
        YtDlpSettings {
            python: Some(dir.join("no-such-python")),
            ..YtDlpSettings::default()
        },
        YtDlpSettings {
            python: Some(PathBuf::from("/bin/false")),
            ..YtDlpSettings::default()
        },
        YtDlpSettings {
            ytdlp: Some(native.clone()),
            ..YtDlpSettings::default()
        },
    ] {
        assert!(YtDlpResolver::detect(s).await.is_none());
    }
}
