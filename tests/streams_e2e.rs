//! End to end through the node and the fake Discord server, for streams and sites: an ICY radio
//! stream (metadata blocks cut out of the audio, stream title as track title, endless, rejoined
//! after a drop), HLS VOD in MPEG-TS and fMP4 segments (the staircase, and a seek), live HLS (a
//! sliding playlist), pages resolved by the real yt-dlp's generic extractor, and the route
//! planner binding source traffic to its addresses (the media server logs who connected).
//!
//! The yt-dlp test installs yt-dlp from PyPI into a private venv (`tests/tools/install-ytdlp.sh`,
//! or `ACOUSTIC_YTDLP_PYTHON`) and puts it on the node's `PATH`; when that is impossible it says
//! so loudly and checks nothing else.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::audio::{Audio, band_dbfs, rms_dbfs, staircase_steps, tone_dbfs};
use common::media_server::{IcyStream, Script, Times};
use common::node::{NodeOptions, WsClient};
use common::rig::{Rig, RigOptions, assert_played_without_a_break, report_audio, urlencode};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

async fn load(rig: &Rig, identifier: &str) -> Value {
    let (status, body) = rig
        .node
        .get_json(&format!(
            "/v4/loadtracks?identifier={}",
            urlencode(identifier)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn load_track(rig: &Rig, identifier: &str) -> Value {
    let body = load(rig, identifier).await;
    assert_eq!(body["loadType"], "track", "{identifier}: {body}");
    body["data"].clone()
}

async fn play(rig: &Rig, ws: &WsClient, guild: u64, track: &Value, extra: Value) {
    let mut body = json!({"track": {"encoded": track["encoded"]}, "voice": rig.voice(guild)});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let (s, p) = rig.node.patch_json(&rig.player_path(ws, guild), body).await;
    assert_eq!(s, 200, "{p}");
}

async fn stop(rig: &Rig, ws: &WsClient, guild: u64) {
    let r = rig
        .node
        .http()
        .delete(rig.node.url(&rig.player_path(ws, guild)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

/// Audio from the first non-silent sample.
fn from_onset(audio: &Audio) -> Audio {
    let start = audio.onset(-40.0).unwrap_or(0) as f64 / audio.rate as f64;
    audio.seconds(start, audio.duration_s())
}

/// The audio of `guild` so far, from its onset.
fn heard(rig: &Rig, guild: u64) -> Audio {
    from_onset(&report_audio(&rig.report(guild)))
}

/// Checks second k of `audio` is staircase step `first + k` for `seconds` seconds (the first
/// second may straddle an onset).
fn assert_staircase(audio: &Audio, first: usize, seconds: usize, what: &str) {
    let steps = staircase_steps(&audio.mono(), audio.rate);
    assert!(
        steps.len() >= seconds,
        "{what}: only {} s of audio: {steps:?}",
        steps.len()
    );
    let want: Vec<Option<usize>> = (first..first + seconds).map(Some).collect();
    let matching = steps[..seconds]
        .iter()
        .zip(&want)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        matching + 1 >= seconds,
        "{what}: steps {:?}, want {want:?}",
        &steps[..seconds]
    );
}

/// RMS of each 10 ms window, in dBFS.
fn window_levels(audio: &Audio) -> Vec<f64> {
    audio
        .mono()
        .chunks(audio.rate as usize / 100)
        .map(rms_dbfs)
        .collect()
}

// ------------------------------------------------------------------------------------- ICY

fn radio(rig: &Rig, path: &str) -> String {
    let audio = std::fs::read(common::media("icy/tone-440.mp3")).unwrap();
    rig.media.put_icy(
        path,
        IcyStream {
            audio: Arc::new(audio),
            content_type: "audio/mpeg".into(),
            // Small on purpose: a block every ~1/8 s of audio, each one an MP3 frame broken if
            // it were left in.
            metaint: 2000,
            titles: vec![
                "Acoustic Radio - Song A".into(),
                "Acoustic Radio - Song B".into(),
            ],
            blocks_per_title: 5,
            // Real time (128 kbit/s is 16 000 bytes a second) after a 64 KiB burst on connect,
            // as an Icecast server sends by default.
            rate: 16_000,
            burst: 64 * 1024,
            name: Some("Acoustic Test Radio".into()),
        },
    );
    rig.media.url(path)
}

#[tokio::test]
async fn icy_radio_plays_clean_with_its_stream_title() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    let url = radio(&rig, "radio/stream");
    // `icy://` is read as http.
    let icy = url.replacen("http://", "icy://", 1);
    let track = load_track(&rig, &icy).await;
    let info = &track["info"];
    assert_eq!(info["isStream"], true, "{info}");
    assert_eq!(info["isSeekable"], false, "{info}");
    assert_eq!(info["length"], i64::MAX, "{info}");
    assert!(
        info["title"]
            .as_str()
            .unwrap()
            .starts_with("Acoustic Radio - Song "),
        "the StreamTitle is the title: {info}"
    );
    let load_requests = rig.media.requests_for("radio/stream");
    assert!(
        load_requests
            .iter()
            .all(|r| r.header("icy-metadata") == Some("1")),
        "metadata asked for"
    );

    // The stream drops once, 150 000 bytes into the playback connection (some 5 s in): it is
    // joined again.
    rig.media.script(
        "radio/stream",
        Script::new().drop_after(150_000, Times::Once),
    );
    play(&rig, &ws, 1, &track, json!({})).await;
    ws.expect_event("TrackStartEvent", T).await;
    // A seek on a stream is ignored (the player answers 200 and plays on).
    let mut events = ws.collect(Duration::from_millis(1500)).await;
    let (s, _) = rig
        .node
        .patch_json(&rig.player_path(&ws, 1), json!({"position": 60_000}))
        .await;
    assert_eq!(s, 200);
    events.extend(ws.collect(Duration::from_millis(8500)).await);
    stop(&rig, &ws, 1).await;

    // A stream that comes at exactly real time plays on without a break: never stuck, no
    // frame missing once it started.
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        !types
            .iter()
            .any(|t| *t == "TrackStuckEvent" || *t == "TrackEndEvent"),
        "events while playing: {types:?}"
    );
    assert_played_without_a_break(&rig.report(1));

    let audio = heard(&rig, 1);
    // Ten seconds of playing, all of them heard.
    assert!(audio.duration_s() > 9.0, "{} s heard", audio.duration_s());
    // The first seconds: a steady 440 Hz tone at the source level (peak 0.5, −6.02 dBFS; MP3
    // at 128 kbit/s takes up to a dB off a pure tone), nothing else.
    let clean = audio.seconds(0.5, 5.0);
    let level = tone_dbfs(&clean.mono(), 48_000, 440.0);
    let noise = band_dbfs(&clean.mono(), 48_000, 1_000.0, 20_000.0);
    assert!((level + 6.02).abs() < 1.5, "tone at {level:.2} dBFS");
    assert!(noise < -45.0, "energy away from the tone: {noise:.1} dBFS");
    let levels = window_levels(&clean);
    let (lo, hi) = levels
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), l| (lo.min(*l), hi.max(*l)));
    assert!(
        hi - lo < 1.5,
        "10 ms levels vary from {lo:.1} to {hi:.1} dBFS: the metadata is audible"
    );
    // After the drop the stream goes on: the last second is the tone again.
    let tail = audio.seconds(audio.duration_s() - 1.5, audio.duration_s() - 0.5);
    let level = tone_dbfs(&tail.mono(), 48_000, 440.0);
    assert!(
        (level + 6.02).abs() < 2.0,
        "after the drop: {level:.2} dBFS"
    );
    let play_requests = rig.media.requests_for("radio/stream").len() - load_requests.len();
    assert!(
        play_requests >= 2,
        "the dropped stream was joined again ({play_requests} requests)"
    );
}

// ------------------------------------------------------------------------------------- HLS

#[tokio::test]
async fn hls_vod_plays_the_staircase_and_seeks_in_both_segment_types() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    for (guild, path) in [
        (10, "hls/ts/index.m3u8"),
        (11, "hls/fmp4/index.m3u8"),
        (12, "hls/master-variants.m3u8"),
    ] {
        let track = load_track(&rig, &rig.media.url(path)).await;
        assert_eq!(track["info"]["isSeekable"], true, "{path}");
        play(&rig, &ws, guild, &track, json!({})).await;
        ws.expect_event("TrackStartEvent", T).await;
        tokio::time::sleep(Duration::from_millis(2600)).await;
        let before = rig.report(guild).pcm.len();
        let (s, _) = rig
            .node
            .patch_json(&rig.player_path(&ws, guild), json!({"position": 6000}))
            .await;
        assert_eq!(s, 200);
        let end = ws.expect_event("TrackEndEvent", T).await;
        assert_eq!(end["reason"], "finished", "{path}: {end}");
        let r = rig.report(guild);
        let all = report_audio(&r);
        let head = from_onset(&Audio::new(48_000, 2, all.samples[..before].to_vec()));
        assert_staircase(&head, 0, 2, &format!("{path} before the seek"));
        let after = Audio::new(48_000, 2, all.samples[before..].to_vec());
        let after = from_onset(&after.seconds(0.2, after.duration_s()));
        assert_staircase(&after, 6, 3, &format!("{path} after the seek"));
    }
    assert!(
        rig.media
            .requests_for("hls/missing-low/index.m3u8")
            .is_empty()
            && rig
                .media
                .requests_for("hls/missing-video/index.m3u8")
                .is_empty(),
        "the master playlist was seen through to its best audio-only variant"
    );
}

#[tokio::test]
async fn hls_live_plays_on_as_the_playlist_slides() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    // The staircase's first five TS segments (2 s each), looped: steps 0..9, 0..9, …
    let segments = (0..5).map(|i| format!("../ts/seg{i:02}.ts")).collect();
    rig.media
        .put_live_hls("hls/live/index.m3u8", segments, 2.0, 3);
    let track = load_track(&rig, &rig.media.url("hls/live/index.m3u8")).await;
    assert_eq!(track["info"]["isStream"], true);
    assert_eq!(track["info"]["length"], i64::MAX);
    play(&rig, &ws, 20, &track, json!({})).await;
    ws.expect_event("TrackStartEvent", T).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    stop(&rig, &ws, 20).await;

    assert_played_without_a_break(&rig.report(20));
    let audio = heard(&rig, 20);
    assert!(audio.duration_s() > 8.0, "{} s heard", audio.duration_s());
    // Every second is a staircase step, each one after the other (mod 10): nothing skipped,
    // nothing repeated, across playlist reloads.
    let steps = staircase_steps(&audio.mono(), 48_000);
    let known: Vec<usize> = steps.iter().flatten().copied().collect();
    assert!(known.len() >= 7, "steps {steps:?}");
    for pair in known.windows(2) {
        assert_eq!((pair[0] + 1) % 10, pair[1], "steps {steps:?}");
    }
    let reloads = rig.media.requests_for("hls/live/index.m3u8").len();
    assert!(
        reloads >= 4,
        "the playlist was reloaded ({reloads} requests)"
    );
}

// ------------------------------------------------------------------------------ route planner

fn in_block(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if (8..16).contains(&v4.octets()[3]) && v4.octets()[..3] == [127, 0, 0])
}

fn planner_options(strategy: &str) -> RigOptions {
    RigOptions {
        node: NodeOptions {
            server_yaml: format!(
                "    ratelimit:\n      ipBlocks: [\"127.0.0.8/29\"]\n      strategy: \"{strategy}\"\n      retryLimit: 2\n"
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn route_planner_balances_source_traffic_over_its_block() {
    let rig = Rig::start_with(planner_options("LoadBalance")).await;
    let mut ws = rig.ws().await;
    for _ in 0..6 {
        load_track(&rig, &rig.media.url("staircase/staircase.flac")).await;
    }
    let track = load_track(&rig, &rig.media.url("hls/ts/index.m3u8")).await;
    play(&rig, &ws, 30, &track, json!({"endTime": 2500})).await;
    ws.expect_event("TrackEndEvent", T).await;
    let peers: Vec<IpAddr> = rig.media.requests().iter().map(|r| r.peer.ip()).collect();
    assert!(
        peers.iter().all(|ip| in_block(*ip)),
        "every request from the block: {peers:?}"
    );
    let distinct: BTreeSet<_> = peers.iter().collect();
    assert!(distinct.len() >= 3, "spread over the block: {distinct:?}");
    assert!(
        rig.media
            .requests_for("hls/ts/seg01.ts")
            .iter()
            .all(|r| in_block(r.peer.ip())),
        "HLS segments too"
    );
    let audio = heard(&rig, 30);
    assert_staircase(&audio, 0, 2, "HLS through the planner");
}

#[tokio::test]
async fn route_planner_marks_an_address_failing_on_429_and_frees_it() {
    let rig = Rig::start_with(planner_options("RotateOnBan")).await;
    // The first request is refused with 429; the load retries from another address.
    rig.media.script(
        "staircase/staircase.mp3",
        Script::new().too_many_requests(Times::Once),
    );
    let track = load_track(&rig, &rig.media.url("staircase/staircase.mp3")).await;
    assert_eq!(track["info"]["title"], "Acoustic Staircase");
    let reqs = rig.media.requests_for("staircase/staircase.mp3");
    assert_eq!(reqs[0].status, 429);
    let banned = reqs[0].peer.ip();
    assert!(in_block(banned));
    assert!(
        reqs[1..]
            .iter()
            .all(|r| r.peer.ip() != banned && in_block(r.peer.ip())),
        "after the 429 another address: {:?}",
        reqs.iter()
            .map(|r| (r.status, r.peer.ip()))
            .collect::<Vec<_>>()
    );
    // Rotate-on-ban sticks to its new address.
    rig.media.clear_log();
    load_track(&rig, &rig.media.url("staircase/staircase.flac")).await;
    let now = rig.media.requests()[0].peer.ip();
    assert!(
        rig.media.requests().iter().all(|r| r.peer.ip() == now),
        "one address until the next ban"
    );

    let (s, status) = rig.node.get_json("/v4/routeplanner/status").await;
    assert_eq!(s, 200);
    assert_eq!(status["class"], "RotatingIpRoutePlanner");
    assert_eq!(
        status["details"]["failingAddresses"][0]["failingAddress"],
        format!("/{banned}"),
        "{status}"
    );
    assert_eq!(status["details"]["currentAddress"], format!("/{now}"));
    assert_eq!(status["details"]["rotateIndex"], "1");

    let r = rig
        .node
        .http()
        .post(rig.node.url("/v4/routeplanner/free/address"))
        .json(&json!({"address": banned.to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (_, status) = rig.node.get_json("/v4/routeplanner/status").await;
    assert_eq!(status["details"]["failingAddresses"], json!([]), "{status}");
}

// ------------------------------------------------------------------------------------ yt-dlp

/// `<venv>/bin` of the test yt-dlp, installing it on first use; `None` (after a loud message)
/// when that is impossible here.
fn ytdlp_bin() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let python = match std::env::var_os("ACOUSTIC_YTDLP_PYTHON") {
            Some(p) => Some(PathBuf::from(p)),
            None => {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/install-ytdlp.sh");
                std::process::Command::new("bash")
                    .arg(script)
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .and_then(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .rev()
                            .find_map(|l| {
                                l.strip_prefix("ACOUSTIC_YTDLP_PYTHON=").map(PathBuf::from)
                            })
                    })
            }
        };
        let bin = python
            .and_then(|p| p.parent().map(PathBuf::from))
            .filter(|d| d.join("yt-dlp").is_file());
        if bin.is_none() {
            eprintln!(
                "\n\n*** SKIPPED: yt-dlp could not be installed (tests/tools/install-ytdlp.sh \
                 failed); yt-dlp pages were NOT played end to end ***\n\n"
            );
        }
        bin
    })
    .clone()
}

#[tokio::test]
async fn ytdlp_generic_pages_resolve_load_and_play() {
    let Some(bin) = ytdlp_bin() else { return };
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut opts = planner_options("LoadBalance");
    opts.node.env.push(("PATH".into(), path));
    let rig = Rig::start_with(opts).await;
    let mut ws = rig.ws().await;

    let (_, info) = rig.node.get_json("/v4/info").await;
    let names: Vec<&str> = info["sourceManagers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "youtube",
            "soundcloud",
            "bandcamp",
            "twitch",
            "vimeo",
            "http"
        ],
        "yt-dlp found: its sources first, in Lavalink's order"
    );

    let audio_page = format!(
        "<!DOCTYPE html><html><head><title>Staircase in audio</title></head><body>\
         <h1>Listen</h1><audio controls src=\"{}\"></audio></body></html>",
        rig.media.url("staircase/staircase.flac")
    );
    rig.media.put(
        "pages/audio.html",
        audio_page,
        Some("text/html; charset=utf-8"),
    );
    let og_page = format!(
        "<!DOCTYPE html><html><head><title>Staircase og</title>\
         <meta property=\"og:title\" content=\"The OG Staircase\">\
         <meta property=\"og:audio\" content=\"{}\"></head><body>hi</body></html>",
        rig.media.url("staircase/staircase.mp3")
    );
    rig.media
        .put("pages/og.html", og_page, Some("text/html; charset=utf-8"));

    for (guild, page) in [(40, "pages/audio.html"), (41, "pages/og.html")] {
        let track = load_track(&rig, &rig.media.url(page)).await;
        assert_eq!(track["info"]["sourceName"], "ytdlp", "{page}: {track}");
        assert!(track["info"]["length"].as_i64().unwrap() > 9_000, "{track}");
        play(&rig, &ws, guild, &track, json!({"endTime": 3500})).await;
        let end = ws
            .expect_event("TrackEndEvent", Duration::from_secs(30))
            .await;
        assert_eq!(end["reason"], "finished", "{page}: {end}");
        let audio = heard(&rig, guild);
        assert_staircase(&audio, 0, 3, page);
        // The page and the media were fetched from the route planner's block, yt-dlp's
        // requests included.
        for r in rig.media.requests_for(page) {
            assert!(in_block(r.peer.ip()), "{page} from {}", r.peer);
        }
    }
    let media_requests = rig.media.requests_for("staircase/staircase.flac");
    assert!(
        !media_requests.is_empty() && media_requests.iter().all(|r| in_block(r.peer.ip())),
        "the resolved media URL through the planner too"
    );
}

/// Looking for yt-dlp (a Python start and an import: a second or two) does not hold up the
/// node: it answers at once, and only `/v4/info`'s source list waits for the search to end.
#[tokio::test]
async fn the_node_answers_while_ytdlp_is_searched_for() {
    let Some(bin) = ytdlp_bin() else { return };
    // A `python3` that waits at a gate before becoming the venv's interpreter, first on PATH.
    let dir = std::env::temp_dir().join(format!("acoustic-ytdlp-gate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gate = dir.join("gate");
    let _ = std::fs::remove_file(&gate);
    let wrapper = dir.join("python3");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nwhile [ ! -e '{}' ]; do sleep 0.05; done\nexec '{}' \"$@\"\n",
            gate.display(),
            bin.join("python3").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let node = common::node::TestNode::start_with(NodeOptions {
        env: vec![(
            "PATH".into(),
            format!("{}:/usr/local/bin:/usr/bin:/bin", dir.display()),
        )],
        ..Default::default()
    })
    .await;

    // The gate is shut: the search cannot have ended, yet the node serves.
    let (status, _) = node.get_json("/v4/stats").await;
    assert_eq!(status, 200);
    let version = node.http().get(node.url("/version")).send().await.unwrap();
    assert_eq!(version.status(), 200);
    let info = {
        let (http, url) = (node.http().clone(), node.url("/v4/info"));
        tokio::spawn(async move {
            let r = http.get(url).send().await.unwrap();
            r.json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!info.is_finished(), "/v4/info waits for the search");

    std::fs::write(&gate, b"").unwrap();
    let info: Value = tokio::time::timeout(Duration::from_secs(60), info)
        .await
        .expect("/v4/info answers once yt-dlp is found")
        .unwrap();
    let names: Vec<&str> = info["sourceManagers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        names.contains(&"soundcloud") && names.last() == Some(&"http"),
        "{names:?}"
    );
}

/// `acoustic.sources.ytdlp.python` names the interpreter: yt-dlp is found without being on
/// `PATH`.
#[tokio::test]
async fn a_configured_interpreter_finds_ytdlp_off_path() {
    let Some(bin) = ytdlp_bin() else { return };
    let node = common::node::TestNode::start_with(NodeOptions {
        top_yaml: format!(
            "acoustic:\n  sources:\n    ytdlp:\n      python: \"{}\"\n",
            bin.join("python3").display()
        ),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        ..Default::default()
    })
    .await;
    let (status, info) = node.get_json("/v4/info").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = info["sourceManagers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"soundcloud"), "{names:?}");
}
