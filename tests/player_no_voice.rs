//! Player behaviour without a voice connection (§12 items 13–18, 41, 50, 51): loading over the
//! http source, track start, failures, and the `cleanup` end of a track nobody listens to.

mod common;

use std::time::{Duration, Instant};

use common::media_server::{MediaServer, Script};
use common::node::TestNode;
use common::rig::urlencode;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

async fn load(node: &TestNode, url: &str) -> Value {
    let (s, body) = node
        .get_json(&format!("/v4/loadtracks?identifier={}", urlencode(url)))
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

// 13, 14, 15, 17, 18
#[tokio::test]
async fn http_loading_shapes() {
    let node = TestNode::start().await;
    let media = MediaServer::start(common::media_dir());
    let url = media.url("staircase/staircase.mp3");
    let r = load(&node, &url).await;
    assert_eq!(r["loadType"], "track", "{r}");
    let t = &r["data"];
    let info = &t["info"];
    assert_eq!(info["sourceName"], "http");
    assert_eq!(info["identifier"], url.as_str());
    assert_eq!(info["uri"], url.as_str());
    assert_eq!(info["isStream"], false);
    assert_eq!(info["isSeekable"], true);
    assert!(
        (info["length"].as_i64().unwrap() - 10_000).abs() < 150,
        "{info}"
    );
    assert_eq!(info["title"], "Acoustic Staircase");
    assert_eq!(info["author"], "Acoustic Test Media");
    assert!(info["artworkUrl"].is_null() && info["isrc"].is_null());
    assert_eq!(t["pluginInfo"], json!({}));
    assert_eq!(t["userData"], json!({}));

    // 17: the blob is a v3 message with probe info `mp3`.
    use base64::Engine;
    let encoded = t["encoded"].as_str().unwrap();
    assert!(encoded.starts_with("QAA"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let header = u32::from_be_bytes(bytes[..4].try_into().unwrap());
    assert_eq!(header >> 30, 1);
    assert_eq!((header & 0x3FFF_FFFF) as usize, bytes.len() - 4);
    assert_eq!(bytes[4], 3);
    assert!(
        bytes.windows(11).any(|w| w == b"\x00\x04http\x00\x03mp3"),
        "source http then probe mp3"
    );

    // 18: decoding it gives the same track, the string echoed.
    let (s, d) = node
        .get_json(&format!(
            "/v4/decodetrack?encodedTrack={}",
            urlencode(encoded)
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(&d, t);

    // 13: 404 → empty; 500 → error common.
    media.script("missing.mp3", Script::new().not_found());
    assert_eq!(
        load(&node, &media.url("missing.mp3")).await,
        json!({"loadType": "empty", "data": null})
    );
    media.script("broken.mp3", Script::new().server_error());
    let r = load(&node, &media.url("broken.mp3")).await;
    assert_eq!(r["loadType"], "error");
    assert_eq!(r["data"]["severity"], "common");
    // 15: HTML → error common.
    let r = load(&node, &media.url("faults/not-audio.mp3")).await;
    assert_eq!(r["loadType"], "error", "{r}");
    assert_eq!(r["data"]["severity"], "common");
    // Playlists.
    let r = load(&node, &media.url("playlist.m3u")).await;
    assert_eq!(r["loadType"], "playlist", "{r}");
    assert_eq!(r["data"]["tracks"].as_array().unwrap().len(), 3);
    assert_eq!(r["data"]["pluginInfo"], json!({}));

    // 40: a playlist can't be played directly.
    let ws = node.ws().await;
    let (s, b) = node
        .patch_json(
            &format!("/v4/sessions/{}/players/1", ws.session_id),
            json!({"track": {"identifier": media.url("playlist.pls")}}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["message"], "Cannot play a playlist or search result");
}

// 41 without voice, 51 without voice (exception at once), 58 (playing players counted)
#[tokio::test]
async fn track_starts_and_failures_surface_without_voice() {
    let node = TestNode::start().await;
    let media = MediaServer::start(common::media_dir());
    let mut ws = node.ws().await;
    let t = load(&node, &media.url("staircase/staircase.flac")).await["data"].clone();
    let path = format!("/v4/sessions/{}/players/1", ws.session_id);
    let (s, p) = node
        .patch_json(
            &path,
            json!({"track": {"encoded": t["encoded"], "userData": {"a": 1}}}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["track"]["userData"], json!({"a": 1}));
    let start = ws.expect_event("TrackStartEvent", T).await;
    assert_eq!(start["track"]["userData"], json!({"a": 1}));
    assert_eq!(start["track"]["pluginInfo"], json!({}));
    let up = ws.expect_op("playerUpdate", T).await;
    assert_eq!(up["guildId"], "1");
    assert_eq!(up["state"]["connected"], false);
    let (_, stats) = node.get_json("/v4/stats").await;
    assert_eq!(stats["playingPlayers"], 1);
    // Without voice nothing is pulled: the position stays at the start.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, p) = node.get_json(&path).await;
    assert_eq!(p["state"]["position"], 0);

    // A track whose URL now fails: exception promptly (no end yet: nobody drains it).
    media.script("staircase/staircase.ogg", Script::new().not_found());
    let bad = {
        media.clear_script("staircase/staircase.ogg");
        let t = load(&node, &media.url("staircase/staircase.ogg")).await["data"].clone();
        media.script("staircase/staircase.ogg", Script::new().not_found());
        t
    };
    let started = Instant::now();
    node.patch_json(
        &format!("/v4/sessions/{}/players/2", ws.session_id),
        json!({"track": {"encoded": bad["encoded"]}}),
    )
    .await;
    let ex = ws.expect_event("TrackExceptionEvent", T).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(ex["guildId"], "2");
    for k in ["message", "severity", "cause", "causeStackTrace"] {
        assert!(ex["exception"][k].is_string(), "{k}: {ex}");
    }
}

// 50: a track with no voice connection ends with `cleanup` after 60–70 s.
#[tokio::test]
async fn unconnected_track_is_cleaned_up() {
    let node = TestNode::start().await;
    let media = MediaServer::start(common::media_dir());
    let mut ws = node.ws().await;
    let t = load(&node, &media.url("staircase/staircase-48k.wav")).await["data"].clone();
    let started = Instant::now();
    node.patch_json(
        &format!("/v4/sessions/{}/players/1", ws.session_id),
        json!({"track": {"encoded": t["encoded"]}}),
    )
    .await;
    ws.expect_event("TrackStartEvent", T).await;
    let end = ws
        .expect_event("TrackEndEvent", Duration::from_secs(80))
        .await;
    assert_eq!(end["reason"], "cleanup");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(59) && after <= Duration::from_secs(72),
        "cleanup after {after:?}"
    );
}
