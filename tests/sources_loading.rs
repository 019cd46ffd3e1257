//! The `http` and `local` sources against the test media server: what `/v4/loadtracks` would
//! answer for each format and failure, playlists, local confinement, and the playback reader
//! under dropped connections, seeks, stalls and servers without range support.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use acoustic::protocol::load::Severity;
use acoustic::protocol::track_codec::SourceDetails;
use acoustic::sources::{LoadedItem, OpenedMedia, SourceManagers, SourceSettings, TrackData};
use common::media_server::{MediaServer, Script, Times};
use common::{STAIRCASES, media, media_dir};

const TITLE: &str = "Acoustic Staircase";
const ARTIST: &str = "Acoustic Test Media";

fn settings() -> SourceSettings {
    SourceSettings {
        http: true,
        local: false,
        local_directories: Vec::new(),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        proxy: None,
        read_ahead_bytes: 256 * 1024,
        route_planner: None,
    }
}

fn http_sources() -> SourceManagers {
    SourceManagers::new(settings(), None)
}

fn server() -> MediaServer {
    MediaServer::start(media_dir())
}

fn expect_track(item: LoadedItem) -> TrackData {
    match item {
        LoadedItem::Track(t) => t,
        other => panic!("expected a track, got {other:?}"),
    }
}

fn probe_info(track: &TrackData) -> &str {
    match &track.details {
        SourceDetails::ProbeInfo(p) => p,
        SourceDetails::None => panic!("no probe info"),
    }
}

fn expected_probe(file: &str) -> &'static str {
    match file.rsplit('.').next().unwrap() {
        "mp3" => "mp3",
        "m4a" => "mp4",
        "aac" => "adts",
        "flac" => "flac",
        "wav" => "wav",
        "ogg" | "opus" => "ogg",
        "webm" | "mka" => "matroska/webm",
        other => panic!("no probe for {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_loads_as_a_track() {
    let server = server();
    let sources = http_sources();
    for stair in STAIRCASES {
        let url = server.url(&format!("staircase/{}", stair.file));
        let track = expect_track(sources.load(&url).await);
        let info = &track.info;
        assert_eq!(info.source_name, "http", "{}", stair.file);
        assert_eq!(info.identifier, url);
        assert_eq!(info.uri.as_deref(), Some(url.as_str()));
        assert_eq!(
            probe_info(&track),
            expected_probe(stair.file),
            "{}",
            stair.file
        );
        assert!(!info.is_stream && info.is_seekable, "{}", stair.file);
        assert!(
            (info.length - 10_000).abs() <= 150,
            "{}: length {}",
            stair.file,
            info.length
        );
        if stair.tagged {
            assert_eq!(info.title, TITLE, "{}", stair.file);
            assert_eq!(info.author, ARTIST, "{}", stair.file);
        } else {
            assert_eq!(info.title, "Unknown title", "{}", stair.file);
            assert_eq!(info.author, "Unknown artist", "{}", stair.file);
        }
        assert_eq!(info.artwork_url, None);
        assert_eq!(info.position, 0);
    }
}

/// The byte ranges of the requests for `path`: every request must carry a bounded range.
fn requested_ranges(server: &MediaServer, path: &str) -> Vec<(u64, u64)> {
    server
        .requests_for(path)
        .iter()
        .map(|r| {
            let range = r.range.as_deref().expect("every request is ranged");
            let (start, last) = range
                .strip_prefix("bytes=")
                .and_then(|r| r.split_once('-'))
                .expect("a byte range");
            (
                start.parse().unwrap(),
                last.parse().expect("a bounded range"),
            )
        })
        .collect()
}

/// A 100 s moov-last M4A (the staircase ten times over), made once with ffmpeg, whose
/// default MP4 muxing puts the index after the audio.
fn long_moov_last() -> PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sources-long-moovlast.m4a");
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-stream_loop",
                "9",
                "-i",
            ])
            .arg(media("staircase/staircase-moovlast.m4a"))
            .args(["-c", "copy", "-f", "mp4"])
            .arg(&out)
            .status()
            .expect("run ffmpeg");
        assert!(status.success());
        out
    })
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moov_last_m4a_loads_with_ranged_reads_only() {
    let server = server();
    let path = "staircase/staircase-moovlast.m4a";
    let track = expect_track(http_sources().load(&server.url(path)).await);
    assert!((track.info.length - 10_000).abs() <= 150);
    assert_eq!(track.info.title, TITLE);
    assert!(!requested_ranges(&server, path).is_empty());

    // Ten times longer: the index at the end is reached by jumping, not by reading the audio.
    let long = long_moov_last();
    let file_len = std::fs::metadata(&long).unwrap().len();
    server.put("long.m4a", std::fs::read(&long).unwrap(), Some("audio/mp4"));
    let track = expect_track(http_sources().load(&server.url("long.m4a")).await);
    assert!(
        (track.info.length - 100_000).abs() <= 1000,
        "{}",
        track.info.length
    );
    let ranges = requested_ranges(&server, "long.m4a");
    let asked: u64 = ranges
        .iter()
        .map(|&(start, last)| last.min(file_len - 1) + 1 - start)
        .sum();
    assert!(
        ranges.iter().any(|&(start, _)| start > file_len / 2),
        "{ranges:?}"
    );
    assert!(
        asked < file_len / 4,
        "asked for {asked} of {file_len} bytes: {ranges:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes() {
    let server = server();
    let sources = http_sources();
    server.script("gone.mp3", Script::new().not_found());
    server.script("broken.mp3", Script::new().server_error());
    assert_eq!(
        sources.load(&server.url("gone.mp3")).await,
        LoadedItem::Empty
    );
    assert_eq!(
        sources.load(&server.url("no/such/file.mp3")).await,
        LoadedItem::Empty
    );
    match sources.load(&server.url("broken.mp3")).await {
        LoadedItem::Error(e) => {
            assert_eq!(e.message.as_deref(), Some("That URL is not playable."));
            assert_eq!(e.severity, Severity::Common);
            assert!(e.cause_stack_trace.contains("500"), "{e:?}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_pages_and_garbage_are_unknown_formats() {
    let server = server();
    let sources = http_sources();
    server.put(
        "page",
        "<!DOCTYPE html><html><body>hello</body></html>",
        Some("text/html"),
    );
    server.put("noise.bin", vec![0x5Au8; 20_000], Some("audio/mpeg"));
    for path in ["page", "noise.bin", "faults/not-audio.mp3"] {
        match sources.load(&server.url(path)).await {
            LoadedItem::Error(e) => {
                assert_eq!(e.message.as_deref(), Some("Unknown file format."), "{path}");
                assert_eq!(e.severity, Severity::Common);
            }
            other => panic!("{path}: expected an error, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_empty_files_give_clear_answers() {
    let server = server();
    let sources = http_sources();
    match sources.load(&server.url("faults/empty.mp3")).await {
        LoadedItem::Error(e) => assert_eq!(e.message.as_deref(), Some("Unknown file format.")),
        other => panic!("expected an error, got {other:?}"),
    }
    // The first half of a file still has its headers: it loads (decode errors come at playback).
    let track = expect_track(
        sources
            .load(&server.url("faults/truncated/staircase.flac"))
            .await,
    );
    assert_eq!(probe_info(&track), "flac");
    let track = expect_track(sources.load(&server.url("faults/ten-hours.wav")).await);
    assert!(
        track.info.length >= 10 * 3600 * 1000 - 1000,
        "{}",
        track.info.length
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_up_to_five_are_followed() {
    let server = server();
    let sources = http_sources();
    let path = "staircase/staircase.flac";
    server.script(path, Script::new().redirects(5));
    let track = expect_track(sources.load(&server.url(path)).await);
    // The identifier is the URL that finally answered.
    assert_eq!(track.info.identifier, format!("{}?hop=5", server.url(path)));
    assert_eq!(
        track.info.uri.as_deref(),
        Some(track.info.identifier.as_str())
    );

    server.script(path, Script::new().redirects(6));
    match sources.load(&server.url(path)).await {
        LoadedItem::Error(e) => {
            assert_eq!(e.severity, Severity::Common);
            assert!(e.cause_stack_trace.contains("redirects"), "{e:?}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_and_unreachable_hosts() {
    let sources = http_sources();
    match sources.load("http://exa mple.com/a.mp3").await {
        LoadedItem::Error(e) => {
            assert_eq!(e.message.as_deref(), Some("Not a valid URL."));
            assert_eq!(e.severity, Severity::Common);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    match sources
        .load(&format!("http://127.0.0.1:{port}/a.mp3"))
        .await
    {
        LoadedItem::Error(e) => {
            assert_eq!(e.message.as_deref(), Some("Connecting to the URL failed."));
            assert_eq!(e.severity, Severity::Suspicious);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(sources.load("zzz-not-a-source").await, LoadedItem::Empty);
    assert_eq!(
        sources.load("ytsearch:never gonna").await,
        LoadedItem::Empty
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_disabled_claims_nothing() {
    let server = server();
    let sources = SourceManagers::new(
        SourceSettings {
            http: false,
            ..settings()
        },
        None,
    );
    assert!(sources.names().await.is_empty());
    assert_eq!(
        sources.load(&server.url("staircase/staircase.flac")).await,
        LoadedItem::Empty
    );
    assert_eq!(sources.details_layout("http"), None);
    assert!(http_sources().details_layout("http").is_some());
}

fn expect_playlist(item: LoadedItem) -> (String, i32, Vec<TrackData>) {
    match item {
        LoadedItem::Playlist {
            name,
            selected_track,
            tracks,
        } => (name, selected_track, tracks),
        other => panic!("expected a playlist, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m3u_and_pls_playlists() {
    let server = server();
    let sources = http_sources();

    let (name, selected, tracks) = expect_playlist(sources.load(&server.url("playlist.m3u")).await);
    assert_eq!(name, "playlist.m3u");
    assert_eq!(selected, -1);
    let ids: Vec<_> = tracks.iter().map(|t| t.info.identifier.clone()).collect();
    assert_eq!(
        ids,
        [
            server.url("staircase/staircase.mp3"),
            server.url("staircase/staircase.flac"),
            server.url("staircase/staircase.ogg"),
        ]
    );
    // Tags win over the playlist's titles.
    assert!(tracks.iter().all(|t| t.info.title == TITLE));

    let (name, _, tracks) = expect_playlist(sources.load(&server.url("playlist.pls")).await);
    assert_eq!(name, "playlist.pls");
    let probes: Vec<_> = tracks.iter().map(probe_info).collect();
    assert_eq!(probes, ["mp3", "mp4", "ogg"]);

    // Named playlist with a missing entry and an untagged one: the missing one is skipped, the
    // untagged one takes the playlist's title.
    server.put(
        "lists/named.m3u",
        "#EXTM3U\n#PLAYLIST:My Mix\n#EXTINF:1,Gone\n../gone.mp3\n\
         #EXTINF:10,Plain WAV\n../staircase/staircase-mono.wav\n",
        Some("audio/x-mpegurl"),
    );
    let (name, _, tracks) = expect_playlist(sources.load(&server.url("lists/named.m3u")).await);
    assert_eq!(name, "My Mix");
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].info.title, "Plain WAV");
    assert_eq!(
        tracks[0].info.identifier,
        server.url("staircase/staircase-mono.wav")
    );

    // An HLS playlist whose segment is missing fails clearly at load.
    server.put(
        "live.m3u8",
        "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\nseg0.ts\n",
        Some("application/vnd.apple.mpegurl"),
    );
    match sources.load(&server.url("live.m3u8")).await {
        LoadedItem::Error(e) => {
            assert_eq!(e.message.as_deref(), Some("That URL is not playable."));
            assert!(e.cause_stack_trace.contains("HLS segment"), "{e:?}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

/// HLS playlists load as one track: VOD with its length and seekable, through a master playlist
/// as `m3u|hls-outer`, a media playlist as `m3u|hls-inner`.
#[tokio::test]
async fn hls_playlists_load_as_one_track() {
    let server = server();
    let sources = http_sources();
    for (path, probe) in [
        ("hls/ts/index.m3u8", "m3u|hls-inner"),
        ("hls/fmp4/index.m3u8", "m3u|hls-inner"),
        ("hls/master-variants.m3u8", "m3u|hls-outer"),
        ("hls/master-renditions.m3u8", "m3u|hls-outer"),
    ] {
        let track = match sources.load(&server.url(path)).await {
            LoadedItem::Track(t) => t,
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(
            track.details,
            acoustic::protocol::track_codec::SourceDetails::ProbeInfo(probe.into()),
            "{path}"
        );
        assert!(
            (9_900..=10_200).contains(&track.info.length),
            "{path}: length {}",
            track.info.length
        );
        assert!(track.info.is_seekable && !track.info.is_stream, "{path}");
        assert_eq!(track.info.identifier, server.url(path));
        assert_eq!(track.info.source_name, "http");
    }
    // The masters were seen through to the best audio rendition only.
    assert!(server.requests_for("hls/missing-low/index.m3u8").is_empty());
    assert!(
        server
            .requests_for("hls/missing-video/index.m3u8")
            .is_empty()
    );
    assert!(server.requests_for("hls/missing-de/index.m3u8").is_empty());

    // A live playlist (no ENDLIST) is a stream.
    let live = std::fs::read_to_string(media("hls/ts/index.m3u8"))
        .unwrap()
        .replace("#EXT-X-PLAYLIST-TYPE:VOD\n", "")
        .replace("#EXT-X-ENDLIST\n", "")
        .replace("seg0", "ts/seg0");
    server.put("hls/live.m3u8", live, Some("application/vnd.apple.mpegurl"));
    let track = match sources.load(&server.url("hls/live.m3u8")).await {
        LoadedItem::Track(t) => t,
        other => panic!("{other:?}"),
    };
    assert!(track.info.is_stream && !track.info.is_seekable);
    assert_eq!(track.info.length, i64::MAX);

    // Encrypted segments are refused.
    server.put(
        "hls/enc.m3u8",
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXTINF:2,\nts/seg00.ts\n#EXT-X-ENDLIST\n",
        Some("application/vnd.apple.mpegurl"),
    );
    match sources.load(&server.url("hls/enc.m3u8")).await {
        LoadedItem::Error(e) => assert_eq!(
            e.message.as_deref(),
            Some("Encrypted HLS streams are not supported.")
        ),
        other => panic!("{other:?}"),
    }
}

fn local_sources(dirs: Vec<PathBuf>) -> SourceManagers {
    SourceManagers::new(
        SourceSettings {
            local: true,
            local_directories: dirs,
            ..settings()
        },
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_inside_the_directories_only() {
    let staircase = media_dir().join("staircase");
    let sources = local_sources(vec![staircase.clone()]);
    assert_eq!(sources.names().await, ["local", "http"]);

    let flac = staircase.join("staircase.flac");
    let track = expect_track(sources.load(flac.to_str().unwrap()).await);
    let canonical = std::fs::canonicalize(&flac).unwrap();
    assert_eq!(track.info.source_name, "local");
    assert_eq!(track.info.identifier, canonical.to_str().unwrap());
    assert_eq!(track.info.uri.as_deref(), canonical.to_str());
    assert_eq!(track.info.title, TITLE);
    assert!((track.info.length - 10_000).abs() <= 150);
    assert_eq!(probe_info(&track), "flac");

    // Outside (directly or through `..`), missing, a directory: all `empty`, indistinguishable.
    let outside = media_dir().join("signals/tone-1k.wav");
    assert!(outside.is_file());
    for id in [
        outside.to_str().unwrap().to_string(),
        format!("{}/../signals/tone-1k.wav", staircase.display()),
        format!("{}/missing.wav", staircase.display()),
        staircase.display().to_string(),
        "/etc/passwd".to_string(),
    ] {
        assert_eq!(sources.load(&id).await, LoadedItem::Empty, "{id}");
    }

    // A blob naming a file outside cannot be played either.
    let mut forged = track.clone();
    forged.info.identifier = outside.display().to_string();
    forged.info.uri = Some(forged.info.identifier.clone());
    assert!(sources.open(&forged).await.is_err());

    // Disabled: not even files inside are claimed.
    let off = SourceManagers::new(settings(), None);
    assert_eq!(off.load(flac.to_str().unwrap()).await, LoadedItem::Empty);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_playlist_and_playback() {
    let root = media_dir().to_path_buf();
    let sources = local_sources(vec![root.clone()]);
    let (name, _, tracks) = expect_playlist(
        sources
            .load(root.join("playlist.m3u").to_str().unwrap())
            .await,
    );
    assert_eq!(name, "playlist.m3u");
    assert_eq!(tracks.len(), 3);
    assert!(tracks.iter().all(|t| t.info.source_name == "local"));

    let track = expect_track(
        sources
            .load(root.join("staircase/staircase-44k.wav").to_str().unwrap())
            .await,
    );
    let opened = sources.open(&track).await.unwrap();
    assert!(opened.seekable);
    assert!(opened.reader.readiness().finished);
    let expected = std::fs::read(root.join("staircase/staircase-44k.wav")).unwrap();
    let got = read_all(opened).await;
    assert!(got == expected, "the file reader returned other bytes");
}

// ---- the playback reader -------------------------------------------------------------------

async fn open_url(sources: &SourceManagers, url: &str) -> OpenedMedia {
    let track = expect_track(sources.load(url).await);
    sources.open(&track).await.expect("opens")
}

/// Reads the whole reader on a blocking thread, as the audio engine would.
async fn read_all(mut opened: OpenedMedia) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        opened
            .reader
            .read_to_end(&mut out)
            .expect("read to the end");
        out
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_resume_at_the_same_byte() {
    let server = server();
    let sources = http_sources();
    let path = "staircase/staircase-44k.wav";
    let track = expect_track(sources.load(&server.url(path)).await);
    server.clear_log();
    // Each of the next three responses is cut after 300 000 bytes.
    server.script(path, Script::new().drop_after(300_000, Times::N(3)));
    let mut opened = sources.open(&track).await.unwrap();
    assert!(opened.seekable);
    assert_eq!(opened.extension.as_deref(), Some("wav"));
    let got = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        opened.reader.read_to_end(&mut out).map(|_| out)
    })
    .await
    .unwrap()
    .expect("no error surfaces");
    let expected = std::fs::read(media(path)).unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the bytes differ");
    // The reconnects asked for exactly where the drops happened.
    let playback: Vec<_> = server
        .requests_for(path)
        .iter()
        .filter_map(|r| r.range_start())
        .collect();
    assert_eq!(playback, [0, 300_000, 600_000, 900_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeking_far_ahead_asks_for_a_range() {
    let server = server();
    let sources = http_sources();
    let path = "staircase/staircase-48k.wav";
    let opened = open_url(&sources, &server.url(path)).await;
    server.clear_log();
    let expected = std::fs::read(media(path)).unwrap();
    let mut reader = opened.reader;
    let (got_head, got_tail) = tokio::task::spawn_blocking(move || {
        let mut head = vec![0u8; 1000];
        reader.read_exact(&mut head).unwrap();
        // Back within the window: free. Far ahead: a new request.
        reader.seek(SeekFrom::Start(10)).unwrap();
        let mut again = vec![0u8; 990];
        reader.read_exact(&mut again).unwrap();
        assert_eq!(&again[..], &head[10..]);
        assert_eq!(reader.seek(SeekFrom::Start(1_500_000)).unwrap(), 1_500_000);
        let mut tail = Vec::new();
        reader.read_to_end(&mut tail).unwrap();
        (head, tail)
    })
    .await
    .unwrap();
    assert_eq!(got_head, expected[..1000]);
    assert!(got_tail == expected[1_500_000..]);
    let starts: Vec<_> = server
        .requests_for(path)
        .iter()
        .filter_map(|r| r.range_start())
        .collect();
    assert_eq!(starts, [1_500_000], "one new request, at the seek target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_out_instead_of_hanging() {
    let server = server();
    let sources = SourceManagers::new(
        SourceSettings {
            read_timeout: Duration::from_millis(400),
            ..settings()
        },
        None,
    );
    let path = "staircase/staircase-44k.wav";
    let url = server.url(path);
    let track = expect_track(sources.load(&url).await);
    server.script(path, Script::new().stall_after(100_000, Times::Always));
    let mut opened = sources.open(&track).await.unwrap();
    let (read, error, waited) = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let started = Instant::now();
            match opened.reader.read(&mut buf) {
                Ok(0) => panic!("a stalled stream must not look finished"),
                Ok(n) => total += n,
                Err(e) => return (total, e, started.elapsed()),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(read, 100_000);
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_notify_report_progress() {
    let server = server();
    let sources = http_sources();
    let path = "staircase/staircase-mono.wav";
    let url = server.url(path);
    let track = expect_track(sources.load(&url).await);
    // 400 kB/s: the 880 kB file takes about two seconds.
    server.script(path, Script::new().throttle(400_000));
    let mut opened = sources.open(&track).await.unwrap();
    let notified = Arc::new(AtomicUsize::new(0));
    let n = notified.clone();
    opened.reader.set_notify(Arc::new(move || {
        n.fetch_add(1, Ordering::SeqCst);
    }));
    let handle = opened.reader.readiness_handle();
    let first = handle.get();
    assert!(!first.finished);
    // Bytes arrive and are announced while nobody reads.
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.get().buffered < 100_000 {
        assert!(Instant::now() < deadline, "no progress: {:?}", handle.get());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(notified.load(Ordering::SeqCst) > 0);
    // Read-ahead is bounded by the setting.
    let len = std::fs::metadata(media(path)).unwrap().len() as usize;
    let got = read_all(opened).await;
    assert_eq!(got.len(), len);
    let end = handle.get();
    assert!(end.finished && end.buffered == 0, "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_is_bounded() {
    let server = server();
    let sources = http_sources(); // 256 KiB read-ahead
    let path = "staircase/staircase-44k.wav";
    let opened = open_url(&sources, &server.url(path)).await;
    let handle = opened.reader.readiness_handle();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = handle.get();
    assert!(!r.finished, "a 1.7 MB file must not be read whole: {r:?}");
    assert!(r.buffered <= 256 * 1024, "{r:?}");
    assert!(r.buffered >= 128 * 1024, "{r:?}");
    drop(opened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_without_range_support_play_from_the_start() {
    let server = server();
    let sources = http_sources();
    let path = "staircase/staircase.mp3";
    server.script(path, Script::new().no_range());
    let track = expect_track(sources.load(&server.url(path)).await);
    // Duration estimated from the bit rate and Content-Length.
    assert!(
        (track.info.length - 10_000).abs() <= 500,
        "{}",
        track.info.length
    );
    assert_eq!(track.info.title, TITLE);
    let opened = sources.open(&track).await.unwrap();
    assert!(!opened.seekable);
    assert!(read_all(opened).await == std::fs::read(media(path)).unwrap());

    // A file larger than the read-ahead and the bytes kept behind it: read whole, from the
    // start; a forward skip works (by reading on), a seek back to the start fails cleanly.
    let path = "staircase/staircase-44k.wav";
    server.script(path, Script::new().no_range());
    let track = expect_track(sources.load(&server.url(path)).await);
    let opened = sources.open(&track).await.unwrap();
    assert!(!opened.seekable);
    let expected = std::fs::read(media(path)).unwrap();
    let mut reader = opened.reader;
    let (head, rest, back) = tokio::task::spawn_blocking(move || {
        let mut head = vec![0u8; 1000];
        reader.read_exact(&mut head).unwrap();
        reader.seek(SeekFrom::Start(600_000)).unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        (head, rest, reader.seek(SeekFrom::Start(0)))
    })
    .await
    .unwrap();
    assert_eq!(head, expected[..1000]);
    assert!(rest == expected[600_000..]);
    let err = back.expect_err("seeking back without range support fails");
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
}

/// A one-shot ICY-style radio: `Content-Type: audio/mpeg`, an `icy-name`, no length, and MP3
/// bytes forever, starting mid-frame as a radio joined at a random moment does.
async fn endless_radio() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/radio", listener.local_addr().unwrap());
    let audio = std::fs::read(media("staircase/staircase-untagged.mp3")).unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let audio = audio.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\n\
                              icy-name: Test Radio\r\nconnection: close\r\n\r\n";
                if socket.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let mut from = audio.len() / 2 + 3;
                loop {
                    let end = (from + 4096).min(audio.len());
                    if socket.write_all(&audio[from..end]).await.is_err() {
                        return;
                    }
                    from = if end == audio.len() { 0 } else { end };
                }
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_streams_are_streams() {
    let (url, server) = endless_radio().await;
    let sources = http_sources();
    let icy = url.replacen("http://", "icy://", 1);
    let track = expect_track(sources.load(&icy).await);
    assert_eq!(track.info.identifier, url, "icy:// is read as http://");
    assert!(track.info.is_stream && !track.info.is_seekable);
    assert_eq!(track.info.length, i64::MAX);
    assert_eq!(track.info.title, "Test Radio");
    assert_eq!(track.info.author, "Unknown artist");
    assert_eq!(probe_info(&track), "mp3");

    let opened = sources.open(&track).await.unwrap();
    assert!(!opened.seekable);
    let mut reader = opened.reader;
    let got = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 200_000];
        reader.read_exact(&mut buf).map(|_| reader.readiness())
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!got.finished);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_through_the_configured_proxy() {
    use acoustic::sources::ProxySettings;
    // The media server stands in for the proxy: it logs the absolute-form request it receives.
    let proxy = server();
    let sources = SourceManagers::new(
        SourceSettings {
            proxy: Some(ProxySettings {
                host: proxy.addr().ip().to_string(),
                port: proxy.addr().port(),
                user: Some("bot".into()),
                password: Some("secret".into()),
            }),
            ..settings()
        },
        None,
    );
    let _ = sources.load("http://music.invalid/song.mp3").await;
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].path.contains("music.invalid") || seen[0].header("host") == Some("music.invalid"),
        "{:?}",
        seen[0]
    );
    // "bot:secret", base64.
    assert_eq!(
        seen[0].header("proxy-authorization"),
        Some("Basic Ym90OnNlY3JldA==")
    );
}

/// Demuxes `source` to the end (the end time of the last packet, s), then, on `again`, seeks to
/// 6 s (the time landed on, s) — what the audio engine will do with an opened track.
fn demux_and_seek(
    source: Box<dyn symphonia::core::io::MediaSource>,
    again: Box<dyn symphonia::core::io::MediaSource>,
    container: acoustic::sources::sniff::Container,
) -> (f64, f64) {
    use acoustic::sources::probe::format_reader;
    use symphonia::core::formats::{FormatReader, SeekMode, SeekTo, TrackType};
    use symphonia::core::units::{Time, Timestamp};

    let time_of = |format: &dyn FormatReader, ts: Timestamp| {
        let t = format.default_track(TrackType::Audio).unwrap();
        t.time_base.unwrap().calc_time(ts).unwrap().as_secs_f64()
    };
    let mut format = format_reader(source, container).unwrap();
    let id = format.default_track(TrackType::Audio).unwrap().id;
    let mut end = 0.0f64;
    while let Some(packet) = format.next_packet().unwrap() {
        if packet.track_id == id {
            end = end.max(time_of(&*format, packet.pts.saturating_add(packet.dur)));
        }
    }
    let mut format = format_reader(again, container).unwrap();
    let to = SeekTo::Time {
        time: Time::from_millis(6000),
        track_id: Some(id),
    };
    let seeked = format.seek(SeekMode::Accurate, to).unwrap();
    format
        .next_packet()
        .unwrap()
        .expect("a packet after the seek");
    (end, time_of(&*format, seeked.actual_ts))
}

/// Through the HTTP reader, every format demuxes to the end and seeks (Range requests
/// underneath) exactly as it does from the file itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opened_media_demuxes_and_seeks_like_the_file() {
    use acoustic::sources::sniff::Container;

    let server = server();
    let sources = http_sources();
    for stair in STAIRCASES {
        let url = server.url(&format!("staircase/{}", stair.file));
        let track = expect_track(sources.load(&url).await);
        let whole = sources.open(&track).await.unwrap();
        let middle = sources.open(&track).await.unwrap();
        let container = whole.container;
        let path = media(&format!("staircase/{}", stair.file));
        let (http, file) = tokio::task::spawn_blocking(move || {
            let http = demux_and_seek(whole.reader, middle.reader, container);
            let open = || Box::new(std::fs::File::open(&path).unwrap());
            (http, demux_and_seek(open(), open(), container))
        })
        .await
        .unwrap();
        assert_eq!(http, file, "{}", stair.file);
        let (end_s, seeked_s) = http;
        assert!(
            (end_s - 10.0).abs() < 0.15,
            "{}: ends at {end_s}",
            stair.file
        );
        // symphonia 0.6.1's Matroska seek lands on the cluster after the target (from a plain
        // file too); the equality above is what the reader answers for.
        if container != Container::Matroska {
            assert!(
                (seeked_s - 6.0).abs() < 0.1,
                "{}: seeked to {seeked_s}",
                stair.file
            );
        }
    }
}

/// Probing reads the head in one request; formats whose length or tags sit at the tail need
/// one jump there; no byte is fetched twice. (A probe's next range is asked for only once a
/// read waits for it: fetched ahead, it could be made useless by the probe's jump to the tail.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_takes_few_requests() {
    let server = server();
    let sources = http_sources();
    for (file, most) in [
        ("staircase.flac", 1),
        ("staircase-44k.wav", 1),
        ("staircase.ogg", 1),
        ("staircase-faststart.m4a", 1),
        ("staircase.mp3", 2),
        ("staircase.opus", 2),
        ("staircase.webm", 2),
        ("staircase-alac.m4a", 3),
    ] {
        let path = format!("staircase/{file}");
        expect_track(sources.load(&server.url(&path)).await);
        let mut ranges = requested_ranges(&server, &path);
        assert!(ranges.len() <= most, "{file}: {ranges:?}");
        ranges.sort_unstable();
        assert!(
            ranges.windows(2).all(|w| w[0].1 < w[1].0),
            "{file}: bytes fetched twice: {ranges:?}"
        );
    }
}

/// A short file made with ffmpeg's built-in encoders (cached under the target dir).
fn ffmpeg_file(name: &str, args: &[&str]) -> Vec<u8> {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sources-{name}"));
    if !out.is_file() {
        let status = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=2"])
            .args(args)
            .arg(&out)
            .status()
            .expect("run ffmpeg");
        assert!(status.success());
    }
    std::fs::read(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_containers_with_unsupported_codecs_are_common_errors() {
    let server = server();
    let sources = http_sources();
    let mp2 = ffmpeg_file("layer2.mp2", &["-c:a", "mp2", "-f", "mp2"]);
    server.put("layer2.mp3", mp2, Some("audio/mpeg"));
    let ac3 = ffmpeg_file("ac3.mka", &["-c:a", "ac3", "-f", "matroska"]);
    server.put("ac3.mka", ac3, Some("audio/x-matroska"));
    for (path, words) in [("layer2.mp3", "Unsupported"), ("ac3.mka", "AC-3")] {
        match sources.load(&server.url(path)).await {
            LoadedItem::Error(e) => {
                assert_eq!(e.severity, Severity::Common, "{path}");
                let message = e.message.unwrap();
                assert!(message.contains(words), "{path}: {message}");
            }
            other => panic!("{path}: expected an error, got {other:?}"),
        }
    }
}
