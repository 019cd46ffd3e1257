//! Black-box conformance with Lavalink v4 (the §12 checklist items that need no audio), against
//! the real binary over HTTP and WebSocket.

mod common;

use std::time::Duration;

use common::node::{NodeOptions, PASSWORD, TestNode};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(5);

// A v3 http track (title "Unknown title", length 180000, probe mp3) from the spec's worked example.
const HTTP_TRACK: &str = "QAAAewMADVVua25vd24gdGl0bGUADlVua25vd24gYXJ0aXN0AAAAAAACvyAAHGh0dHBzOi8vZXhhbXBsZS5jb20vc29uZy5tcDMAAQAcaHR0cHM6Ly9leGFtcGxlLmNvbS9zb25nLm1wMwAAAARodHRwAANtcDMAAAAAAAAAAA==";

fn assert_error_body(body: &Value, status: u16, path: &str) {
    assert!(
        body["timestamp"].as_i64().unwrap() > 1_600_000_000_000,
        "{body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(body["path"], path, "{body}");
}

// 1, 2, 3
#[tokio::test]
async fn auth_version_and_api_header() {
    let node = TestNode::start().await;
    let plain = reqwest::Client::new();
    let r = plain.get(node.url("/version")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["Lavalink-Api-Version"], "4");
    assert!(r.text().await.unwrap().is_empty());
    let r = plain
        .get(node.url("/version"))
        .header("Authorization", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["Lavalink-Api-Version"], "4");
    assert!(r.text().await.unwrap().is_empty());
    let r = plain
        .get(node.url("/version"))
        .header("Authorization", format!("Bearer {PASSWORD}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no Bearer prefix accepted");

    let r = node.http().get(node.url("/version")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["Lavalink-Api-Version"], "4");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let v = r.text().await.unwrap();
    assert_eq!(v.split('.').next(), Some("4"), "{v}");

    for path in [
        "/v4/info",
        "/v4/stats",
        "/v4/sessions/nope/players",
        "/nope",
    ] {
        let r = node.http().get(node.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["Lavalink-Api-Version"], "4", "{path}");
    }
}

// 4, 5, 7
#[tokio::test]
async fn error_bodies_and_trace() {
    let node = TestNode::start().await;
    let (s, body) = node.get_json("/v4/sessions/nope/players").await;
    assert_eq!(s, 404);
    assert_error_body(&body, 404, "/v4/sessions/nope/players");
    assert_eq!(body["error"], "Not Found");
    assert_eq!(body["message"], "Session not found");
    assert!(body.get("trace").is_none());

    let (_, body) = node.get_json("/v4/sessions/nope/players?trace=true").await;
    assert!(body["trace"].is_string(), "{body}");
    assert_eq!(body["path"], "/v4/sessions/nope/players");

    let ws = node.ws().await;
    let (s, body) = node
        .get_json(&format!(
            "/v4/sessions/{}/players/notanumber",
            ws.session_id
        ))
        .await;
    assert_eq!(s, 400);
    assert_error_body(
        &body,
        400,
        &format!("/v4/sessions/{}/players/notanumber", ws.session_id),
    );
    assert_eq!(body["error"], "Bad Request");

    // Wrong method on a known path.
    let r = node
        .http()
        .delete(node.url("/v4/info"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_error_body(&body, 405, "/v4/info");
}

// 8, 9, 10
#[tokio::test]
async fn info_and_stats() {
    let node = TestNode::start().await;
    let (s, info) = node.get_json("/v4/info").await;
    assert_eq!(s, 200);
    let v = &info["version"];
    assert_eq!(v["major"], 4);
    assert!(v["minor"].is_u64() && v["patch"].is_u64() && v["semver"].is_string());
    assert!(v.as_object().unwrap().contains_key("preRelease"));
    assert!(info["buildTime"].is_i64());
    for k in ["branch", "commit"] {
        assert!(info["git"][k].is_string());
    }
    assert!(info["git"]["commitTime"].is_i64());
    assert!(info["jvm"].is_string() && info["lavaplayer"].is_string());
    assert!(info["plugins"].as_array().unwrap().is_empty());
    let filters: Vec<&str> = info["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        filters,
        [
            "volume",
            "equalizer",
            "karaoke",
            "timescale",
            "tremolo",
            "vibrato",
            "distortion",
            "rotation",
            "channelMix",
            "lowPass"
        ]
    );
    let sources: Vec<&str> = info["sourceManagers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(sources.contains(&"http"));

    let (s, stats) = node.get_json("/v4/stats").await;
    assert_eq!(s, 200);
    for k in ["players", "playingPlayers", "uptime"] {
        assert!(stats[k].is_i64(), "{k}");
    }
    for k in ["free", "used", "allocated", "reservable"] {
        assert!(stats["memory"][k].is_i64(), "{k}");
    }
    assert!(stats["memory"]["used"].as_i64().unwrap() > 0);
    assert!(stats["cpu"]["cores"].as_i64().unwrap() >= 1);
    for k in ["systemLoad", "lavalinkLoad"] {
        let l = stats["cpu"][k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&l), "{k} = {l}");
    }
    assert!(stats.get("frameStats").is_none_or(Value::is_null));
}

// 9 (config side)
#[tokio::test]
async fn disabled_filter_and_source_leave_info() {
    let node = TestNode::start_with(NodeOptions {
        server_yaml: "    filters:\n      karaoke: false\n    sources:\n      http: false\n".into(),
        ..Default::default()
    })
    .await;
    let (_, info) = node.get_json("/v4/info").await;
    let filters: Vec<&str> = info["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(!filters.contains(&"karaoke"));
    assert_eq!(filters.len(), 9);
    assert!(
        !info["sourceManagers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "http")
    );

    // 36: a disabled filter in a PATCH is rejected before anything happens.
    let ws = node.ws().await;
    let path = format!("/v4/sessions/{}/players/1", ws.session_id);
    let (s, body) = node
        .patch_json(&path, json!({"filters": {"karaoke": null}}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        body["message"],
        "Following filters are disabled in the config: karaoke"
    );
    let (s, _) = node.get_json(&path).await;
    assert_eq!(s, 404, "a rejected PATCH creates no player");
}

// 11, 12, 19, 20, 21, 22, 23, 24
#[tokio::test]
async fn load_and_decode() {
    let node = TestNode::start().await;
    let (s, body) = node.get_json("/v4/loadtracks").await;
    assert_eq!(s, 400);
    assert_error_body(&body, 400, "/v4/loadtracks");

    let (s, body) = node
        .get_json("/v4/loadtracks?identifier=zzz-not-a-source")
        .await;
    assert_eq!(s, 200);
    assert_eq!(body, json!({"loadType": "empty", "data": null}));

    let enc = urlencode(HTTP_TRACK);
    let (s, a) = node
        .get_json(&format!("/v4/decodetrack?encodedTrack={enc}"))
        .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["encoded"], HTTP_TRACK);
    assert_eq!(a["info"]["title"], "Unknown title");
    assert_eq!(a["info"]["length"], 180000);
    assert_eq!(a["info"]["sourceName"], "http");
    assert_eq!(a["info"]["isSeekable"], true);
    assert_eq!(a["pluginInfo"], json!({}));
    assert_eq!(a["userData"], json!({}));
    assert!(a["info"]["artworkUrl"].is_null() && a["info"]["isrc"].is_null());

    let (_, b) = node.get_json(&format!("/v4/decodetrack?track={enc}")).await;
    assert_eq!(a, b);
    let (s, body) = node.get_json("/v4/decodetrack").await;
    assert_eq!(s, 400);
    assert_eq!(body["message"], "No track to decode provided");

    let r = node
        .http()
        .post(node.url("/v4/decodetracks"))
        .json(&json!([HTTP_TRACK, HTTP_TRACK]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Vec<Value> = r.json().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0], a);
    let r = node
        .http()
        .post(node.url("/v4/decodetracks"))
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "No tracks to decode provided");

    for garbage in ["!!!notbase64", "QAAA", "QAAAewMADVVua25vd24", "AAAAAAAA"] {
        let (s, body) = node
            .get_json(&format!(
                "/v4/decodetrack?encodedTrack={}",
                urlencode(garbage)
            ))
            .await;
        assert!((400..600).contains(&s), "{garbage}: {s}");
        assert!(
            body["message"].is_string() && body["error"].is_string(),
            "{body}"
        );
    }

    // A v1 blob (flags = 0, no version byte, no uri) and a v2 blob with position 30000.
    let v1 = blob(
        false,
        1,
        "T1",
        "A1",
        1000,
        "https://x/y.mp3",
        false,
        None,
        "http",
        Some("mp3"),
        0,
    );
    let (s, t) = node
        .get_json(&format!("/v4/decodetrack?encodedTrack={}", urlencode(&v1)))
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["info"]["title"], "T1");
    assert!(t["info"]["uri"].is_null());
    let v2 = blob(
        true,
        2,
        "T2",
        "A2",
        60000,
        "https://x/z.mp3",
        false,
        Some("https://x/z.mp3"),
        "http",
        Some("mp3"),
        30000,
    );
    let (_, t) = node
        .get_json(&format!("/v4/decodetrack?encodedTrack={}", urlencode(&v2)))
        .await;
    assert_eq!(t["info"]["uri"], "https://x/z.mp3");
    assert_eq!(t["info"]["position"], 30000);

    // Emoji and U+0000 in a title survive encode → decode.
    let title = "a😀\0b";
    let v3 = blob(
        true,
        3,
        title,
        "A",
        1000,
        "https://x/e.mp3",
        false,
        Some("https://x/e.mp3"),
        "http",
        Some("mp3"),
        0,
    );
    assert!(
        base64_decode(&v3)
            .windows(6)
            .any(|w| w == [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80])
    );
    let (_, t) = node
        .get_json(&format!("/v4/decodetrack?encodedTrack={}", urlencode(&v3)))
        .await;
    assert_eq!(t["info"]["title"], title);
}

// 25, 26, 27, 28
#[tokio::test]
async fn websocket_handshake_ready_stats() {
    let node = TestNode::start().await;
    for (headers, status) in [
        (vec![("User-Id", "1")], 401u16),
        (vec![("Authorization", PASSWORD)], 400),
        (vec![("Authorization", PASSWORD), ("User-Id", "0")], 400),
        (vec![("Authorization", PASSWORD), ("User-Id", "abc")], 400),
    ] {
        let r = upgrade_request(&node, &headers).await;
        assert_eq!(r.status().as_u16(), status, "{headers:?}");
        assert_eq!(r.headers()["Lavalink-Api-Version"], "4");
    }

    let mut ws = node.ws_with(&[("User-Id", "42")]).await;
    assert_eq!(ws.resumed_header.as_deref(), Some("false"));
    let ready = ws.expect_op("ready", T).await;
    assert_eq!(ready["resumed"], false);
    let id = ready["sessionId"].as_str().unwrap();
    assert_eq!(id.len(), 16);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    let stats = ws.expect_op("stats", Duration::from_secs(2)).await;
    assert!(stats.as_object().unwrap().contains_key("frameStats"));
    assert!(stats["frameStats"].is_null());
    assert!(stats["cpu"]["cores"].is_i64());

    ws.send_text("hello? {\"op\":\"play\"}").await;
    let msgs = ws.collect(Duration::from_millis(500)).await;
    assert!(msgs.is_empty(), "{msgs:?}");
    // Still open: REST on the session works.
    let (s, _) = node
        .get_json(&format!("/v4/sessions/{}/players", ws.session_id))
        .await;
    assert_eq!(s, 200);
}

// 29, 30, 31, 32
#[tokio::test]
async fn player_create_get_volume_pause() {
    let node = TestNode::start().await;
    let ws = node.ws().await;
    let base = format!("/v4/sessions/{}/players", ws.session_id);
    let (s, p) = node.patch_json(&format!("{base}/1"), json!({})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["guildId"], "1");
    assert!(p["track"].is_null() && p.as_object().unwrap().contains_key("track"));
    assert_eq!(p["volume"], 100);
    assert_eq!(p["paused"], false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((p["state"]["time"].as_i64().unwrap() - now).abs() < 5000);
    assert_eq!(p["state"]["position"], 0);
    assert_eq!(p["state"]["connected"], false);
    assert_eq!(p["state"]["ping"], -1);
    assert_eq!(
        p["voice"],
        json!({"token": "", "endpoint": "", "sessionId": "", "channelId": null})
    );
    assert_eq!(p["filters"], json!({}));

    let (s, list) = node.get_json(&base).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, body) = node.get_json(&format!("{base}/2")).await;
    assert_eq!(s, 404);
    assert_eq!(body["message"], "Player not found");

    for (v, want) in [(50, 50), (2000, 1000), (-5, 0)] {
        let (s, p) = node
            .patch_json(&format!("{base}/1"), json!({"volume": v}))
            .await;
        assert_eq!(s, 200);
        assert_eq!(p["volume"], want);
    }
    let (_, p) = node
        .patch_json(&format!("{base}/1"), json!({"paused": true}))
        .await;
    assert_eq!(p["paused"], true);
    let (_, p) = node.get_json(&format!("{base}/1")).await;
    assert_eq!(p["paused"], true);

    // 6: unknown keys ignored.
    let (s, _) = node
        .patch_json(
            &format!("{base}/1"),
            json!({"volume": 10, "somethingNew": {"x": 1}}),
        )
        .await;
    assert_eq!(s, 200);
}

// 33, 34, 35, 37, 38, 39, 40 and lesson 6, 7
#[tokio::test]
async fn player_patch_validation_and_filters() {
    let node = TestNode::start().await;
    let ws = node.ws().await;
    let p1 = format!("/v4/sessions/{}/players/1", ws.session_id);

    let (s, b) = node
        .patch_json(
            &p1,
            json!({"track": {"encoded": HTTP_TRACK}, "encodedTrack": HTTP_TRACK}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["message"],
        "Cannot specify both track and encodedTrack/identifier"
    );
    let (s, b) = node
        .patch_json(
            &p1,
            json!({"track": {"encoded": HTTP_TRACK, "identifier": "x"}}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["message"],
        "Cannot specify both encodedTrack and identifier"
    );
    let (s, b) = node.patch_json(&p1, json!({"endTime": 0})).await;
    assert_eq!(s, 400);
    assert_eq!(b["message"], "End time must be greater than 0");
    for voice in [
        json!({"token": "t", "endpoint": "e", "sessionId": "s"}),
        json!({"token": "t", "endpoint": "e", "sessionId": "s", "channelId": null}),
        json!({"token": "", "endpoint": "e", "sessionId": "s", "channelId": "1"}),
        json!({"token": "t", "endpoint": " ", "sessionId": "s", "channelId": "1"}),
    ] {
        let (s, b) = node.patch_json(&p1, json!({ "voice": voice })).await;
        assert_eq!(s, 400, "{voice}");
        assert_eq!(
            b["message"],
            "token, endpoint, sessionId and channelId must be provided in voice state"
        );
    }
    let (s, _) = node.get_json(&p1).await;
    assert_eq!(s, 404, "rejected PATCHes create no player");

    let (s, p) = node
        .patch_json(&p1, json!({"filters": {"timescale": {"speed": 1.2}}}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        p["filters"],
        json!({"timescale": {"speed": 1.2, "pitch": 1.0, "rate": 1.0}})
    );
    let (_, p) = node.patch_json(&p1, json!({"filters": {}})).await;
    assert_eq!(p["filters"], json!({}));
    let (s, p) = node
        .patch_json(
            &p1,
            json!({"filters": {"pluginFilters": {"unknown-plugin": {"x": 1}}}}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["filters"], json!({}));
    let (_, p) = node
        .patch_json(
            &p1,
            json!({"filters": {"equalizer": [{"band": 0, "gain": 0.2}]}}),
        )
        .await;
    assert_eq!(
        p["filters"],
        json!({"equalizer": [{"band": 0, "gain": 0.2}]})
    );
    let (s, b) = node
        .patch_json(&p1, json!({"filters": {"volume": null}}))
        .await;
    assert_eq!(s, 400);
    assert!(b["message"].is_string());
    let (s, b) = node
        .patch_json(&p1, json!({"filters": {"timescale": {"speed": -1}}}))
        .await;
    assert_eq!(s, 400);
    assert!(
        b["message"].as_str().unwrap().contains("timescale.speed"),
        "{b}"
    );
    let (s, _) = node
        .patch_json(&p1, json!({"filters": {"timescale": {"speed": "fast"}}}))
        .await;
    assert_eq!(s, 400);

    let (s, b) = node
        .patch_json(&p1, json!({"track": {"identifier": "zzz-not-a-source"}}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["message"], "No matches found for identifier");

    // Lesson 6: stopping an idle player is a successful no-op.
    let (s, p) = node
        .patch_json(&p1, json!({"track": {"encoded": null}}))
        .await;
    assert_eq!(s, 200);
    assert!(p["track"].is_null());

    // Lesson 7: wavelink's full play body (here without a track) parses.
    let eq: Vec<Value> = (0..15).map(|b| json!({"band": b, "gain": 0.0})).collect();
    let (s, p) = node
        .patch_json(&p1, json!({"endTime": null, "volume": 100, "paused": false, "filters": {"equalizer": eq}, "position": 0}))
        .await;
    assert_eq!(s, 200, "{p}");

    // Malformed JSON and wrong types.
    let r = node
        .http()
        .patch(node.url(&p1))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_error_body(&b, 400, &p1);
    let (s, _) = node.patch_json(&p1, json!({"volume": "loud"})).await;
    assert_eq!(s, 400);
    let (s, _) = node.patch_json(&p1, json!({"paused": null})).await;
    assert_eq!(s, 400);
    let (s, _) = node.patch_json(&p1, json!([1, 2])).await;
    assert_eq!(s, 400);
    let (s, _) = node
        .patch_json(&format!("{p1}?noReplace=maybe"), json!({}))
        .await;
    assert_eq!(s, 400);
}

// 52 (without audio), 54
#[tokio::test]
async fn delete_player_and_session_patch() {
    let node = TestNode::start().await;
    let ws = node.ws().await;
    let base = format!("/v4/sessions/{}", ws.session_id);
    node.patch_json(&format!("{base}/players/1"), json!({}))
        .await;
    let r = node
        .http()
        .delete(node.url(&format!("{base}/players/1")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.text().await.unwrap().is_empty());
    let (s, _) = node.get_json(&format!("{base}/players/1")).await;
    assert_eq!(s, 404);
    let r = node
        .http()
        .delete(node.url(&format!("{base}/players/1")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = node
        .http()
        .delete(node.url("/v4/sessions/nope/players/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let (s, b) = node.patch_json(&base, json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"resuming": false, "timeout": 60}));
    let (_, b) = node
        .patch_json(&base, json!({"resuming": true, "timeout": 30}))
        .await;
    assert_eq!(b, json!({"resuming": true, "timeout": 30}));
    let (_, b) = node.patch_json(&base, json!({})).await;
    assert_eq!(b, json!({"resuming": true, "timeout": 30}));
    let (s, _) = node.patch_json("/v4/sessions/nope", json!({})).await;
    assert_eq!(s, 404);
}

// 55, 56 (events replayed), 57
#[tokio::test]
async fn session_resume_and_expiry() {
    let node = TestNode::start().await;
    let ws = node.ws().await;
    let id = ws.session_id.clone();
    node.patch_json(
        &format!("/v4/sessions/{id}"),
        json!({"resuming": true, "timeout": 3}),
    )
    .await;
    node.patch_json(
        &format!("/v4/sessions/{id}/players/7"),
        json!({"volume": 55}),
    )
    .await;
    ws.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _) = node.get_json(&format!("/v4/sessions/{id}/players")).await;
    assert_eq!(s, 404, "paused session is not reachable over REST");

    let mut ws = node
        .ws_with(&[("User-Id", "1234"), ("Session-Id", &id)])
        .await;
    assert_eq!(ws.resumed_header.as_deref(), Some("true"));
    let ready = ws.expect_op("ready", T).await;
    assert_eq!(ready["resumed"], true);
    assert_eq!(ready["sessionId"], id.as_str());
    let update = ws.expect_op("playerUpdate", T).await;
    assert_eq!(update["guildId"], "7");
    let (s, p) = node.get_json(&format!("/v4/sessions/{id}/players/7")).await;
    assert_eq!(s, 200);
    assert_eq!(p["volume"], 55, "players survived");

    // Expiry: disconnect again and wait past the timeout.
    ws.close().await;
    tokio::time::sleep(Duration::from_millis(3600)).await;
    let ws = node
        .ws_with(&[("User-Id", "1234"), ("Session-Id", &id)])
        .await;
    assert_eq!(ws.resumed_header.as_deref(), Some("false"));
    assert_ne!(ws.session_id, id);
    let (s, _) = node.get_json(&format!("/v4/sessions/{id}/players")).await;
    assert_eq!(s, 404);

    // Without resuming, a closed session is gone at once.
    let id2 = ws.session_id.clone();
    ws.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ws3 = node
        .ws_with(&[("User-Id", "1234"), ("Session-Id", &id2)])
        .await;
    assert_eq!(ws3.resumed_header.as_deref(), Some("false"));
}

// 58
#[tokio::test]
async fn stats_count_players_across_sessions() {
    let node = TestNode::start().await;
    let a = node.ws().await;
    let b = node.ws().await;
    node.patch_json(
        &format!("/v4/sessions/{}/players/1", a.session_id),
        json!({}),
    )
    .await;
    node.patch_json(
        &format!("/v4/sessions/{}/players/2", b.session_id),
        json!({}),
    )
    .await;
    node.patch_json(
        &format!("/v4/sessions/{}/players/3", b.session_id),
        json!({"paused": true}),
    )
    .await;
    let (_, stats) = node.get_json("/v4/stats").await;
    assert_eq!(stats["players"], 3);
    assert_eq!(stats["playingPlayers"], 0, "no player has a track");
}

// 59
#[tokio::test]
async fn route_planner_disabled() {
    let node = TestNode::start().await;
    let r = node
        .http()
        .get(node.url("/v4/routeplanner/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.text().await.unwrap().is_empty());
    for path in ["/v4/routeplanner/free/all", "/v4/routeplanner/free/address"] {
        let r = node
            .http()
            .post(node.url(path))
            .json(&json!({"address": "1.2.3.4"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["message"], "Can't access disabled route planner");
        assert_error_body(&b, 500, path);
    }
}

#[tokio::test]
async fn body_size_is_limited() {
    let node = TestNode::start().await;
    let big = format!("[\"{}\"]", "Q".repeat(5 * 1024 * 1024));
    let r = node
        .http()
        .post(node.url("/v4/decodetracks"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let b: Value = r.json().await.unwrap();
    assert_error_body(&b, 413, "/v4/decodetracks");
}

#[tokio::test]
async fn config_errors_stop_startup_with_a_message() {
    let dir = std::env::temp_dir().join(format!("acoustic-cfg-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("application.yml");
    std::fs::write(
        &cfg,
        "server:\n  port: notaport\nlavalink:\n  server:\n    password: x\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_acoustic"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.port") && err.contains("whole number"),
        "{err}"
    );

    // Unknown keys only warn.
    std::fs::write(&cfg, "server:\n  port: 0\n  address: 127.0.0.1\nlavalink:\n  server:\n    password: x\n    someFutureKey: 1\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_acoustic"))
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        child.try_wait().unwrap().is_none(),
        "node keeps running with an unknown key"
    );
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("lavalink.server.someFutureKey"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

async fn upgrade_request(node: &TestNode, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(node.url("/v4/websocket"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// Java modified UTF-8 with a u16 length prefix.
fn jutf(out: &mut Vec<u8>, s: &str) {
    let mut bytes = Vec::new();
    for unit in s.encode_utf16() {
        match unit {
            0x0001..=0x007F => bytes.push(unit as u8),
            0x0000 | 0x0080..=0x07FF => {
                bytes.push(0xC0 | (unit >> 6) as u8);
                bytes.push(0x80 | (unit & 0x3F) as u8);
            }
            _ => {
                bytes.push(0xE0 | (unit >> 12) as u8);
                bytes.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                bytes.push(0x80 | (unit & 0x3F) as u8);
            }
        }
    }
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(&bytes);
}

/// Builds a track blob by hand, independently of the node's encoder.
#[allow(clippy::too_many_arguments)]
fn blob(
    versioned: bool,
    version: u8,
    title: &str,
    author: &str,
    length: i64,
    identifier: &str,
    stream: bool,
    uri: Option<&str>,
    source: &str,
    probe: Option<&str>,
    position: i64,
) -> String {
    use base64::Engine;
    let mut body = Vec::new();
    if versioned {
        body.push(version);
    }
    jutf(&mut body, title);
    jutf(&mut body, author);
    body.extend_from_slice(&length.to_be_bytes());
    jutf(&mut body, identifier);
    body.push(stream as u8);
    if version >= 2 {
        match uri {
            Some(u) => {
                body.push(1);
                jutf(&mut body, u);
            }
            None => body.push(0),
        }
    }
    if version >= 3 {
        body.push(0);
        body.push(0);
    }
    jutf(&mut body, source);
    if let Some(p) = probe {
        jutf(&mut body, p);
    }
    body.extend_from_slice(&position.to_be_bytes());
    let flags: u32 = if versioned { 1 << 30 } else { 0 };
    let mut msg = (flags | body.len() as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    base64::engine::general_purpose::STANDARD.encode(msg)
}
