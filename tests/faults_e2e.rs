//! Faults through the whole node: a media server that drops the connection mid-file, one that
//! stalls, truncated/corrupt/empty files, a WAV whose header lies — each observed as a client
//! and as the fake Discord server hear it, while another player keeps playing.

mod common;

use std::time::Duration;

use common::audio::{Audio, staircase_steps};
use common::media_server::{Script, Times};
use common::node::NodeOptions;
use common::rig::{Rig, RigOptions, assert_played_without_a_break, report_audio};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);

async fn play(rig: &Rig, ws: &common::node::WsClient, guild: u64, track: &Value) {
    let (s, b) = rig
        .node
        .patch_json(
            &rig.player_path(ws, guild),
            json!({"track": {"encoded": track["encoded"]}, "voice": rig.voice(guild)}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn dropped_connection_resumes_at_the_same_offset_without_a_gap() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    let path = "staircase/staircase-48k.wav";
    let track = rig.load(path).await;
    // Every connection is cut after 400 kB (~2 s of audio): the reader must reconnect at offset.
    rig.media
        .script(path, Script::new().drop_after(400_000, Times::N(3)));
    play(&rig, &ws, 1, &track).await;
    let end = ws
        .expect_event("TrackEndEvent", Duration::from_secs(25))
        .await;
    assert_eq!(end["reason"], "finished");
    let events = ws.collect(Duration::from_millis(200)).await;
    assert!(
        !events.iter().any(|m| m["type"] == "TrackExceptionEvent"),
        "{events:?}"
    );
    let ranges: Vec<Option<u64>> = rig
        .media
        .requests_for(path)
        .iter()
        .map(|r| r.range_start())
        .collect();
    assert!(
        ranges.iter().filter(|r| r.is_some_and(|o| o > 0)).count() >= 2,
        "reconnected at offsets: {ranges:?}"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = rig.report(1);
    assert_eq!(r.lost_packets, 0);
    let audio = report_audio(&r);
    let start = audio.onset(-40.0).unwrap() as f64 / 48_000.0;
    let audio = audio.seconds(start, audio.duration_s());
    let steps = staircase_steps(&audio.mono(), 48_000);
    assert_eq!(
        &steps[..10],
        &(0..10).map(Some).collect::<Vec<_>>()[..],
        "the whole staircase, in order"
    );
    // No audible hole: no 20 ms window of silence inside the audio.
    let mono = audio.seconds(0.0, 9.9).mono();
    for (i, w) in mono.chunks(960).enumerate() {
        assert!(
            common::audio::rms_dbfs(w) > -30.0,
            "silent window at {:.2} s",
            i as f64 * 0.02
        );
    }
}

#[tokio::test]
async fn a_stalled_source_gives_one_stuck_event_and_others_keep_playing() {
    let rig = Rig::start_with(RigOptions {
        node: NodeOptions {
            server_yaml:
                "    trackStuckThresholdMs: 1500\n    timeouts:\n      socketTimeoutMs: 20000\n"
                    .into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut ws = rig.ws().await;
    let healthy = rig.load("staircase/staircase.flac").await;
    let path = "staircase/staircase-44k.wav";
    let stalled = rig.load(path).await;
    rig.media
        .script(path, Script::new().stall_after(300_000, Times::Always));
    play(&rig, &ws, 2, &healthy).await;
    play(&rig, &ws, 3, &stalled).await;
    let stuck = ws.expect_event("TrackStuckEvent", T).await;
    assert_eq!(stuck["guildId"], "3");
    assert_eq!(stuck["thresholdMs"], 1500);
    assert!(
        stuck["track"]["info"]["uri"]
            .as_str()
            .unwrap()
            .ends_with(path)
    );
    // Only once per stall.
    let more = ws.collect(Duration::from_secs(3)).await;
    assert!(
        !more.iter().any(|m| m["type"] == "TrackStuckEvent"),
        "{more:?}"
    );
    // The track is not stopped automatically.
    let (_, p) = rig.node.get_json(&rig.player_path(&ws, 3)).await;
    assert!(!p["track"].is_null());
    // The other player was never starved.
    assert_played_without_a_break(&rig.report(2));
}

#[tokio::test]
async fn broken_files_end_cleanly_and_the_node_keeps_serving() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    let healthy = rig.load("staircase/staircase.ogg").await;
    play(&rig, &ws, 100, &healthy).await;
    ws.expect_event("TrackStartEvent", T).await;

    // Start them all at once (the node must serve them side by side), then collect the ends.
    let mut guild = 200;
    let mut playing = Vec::new();
    for name in common::FAULT_SOURCES {
        for kind in ["truncated", "corrupt"] {
            guild += 1;
            let url = rig.media.url(&format!("faults/{kind}/{name}"));
            let (_, load) = rig
                .node
                .get_json(&format!(
                    "/v4/loadtracks?identifier={}",
                    common::rig::urlencode(&url)
                ))
                .await;
            if load["loadType"] != "track" {
                assert_eq!(load["loadType"], "error", "{kind}/{name}: {load}");
                continue;
            }
            play(&rig, &ws, guild, &load["data"]).await;
            playing.push((guild, format!("{kind}/{name}")));
        }
    }
    assert!(playing.len() >= 10, "{playing:?}");
    for (guild, what) in &playing {
        let end = ws
            .expect(&format!("end of {what}"), Duration::from_secs(30), |m| {
                m["type"] == "TrackEndEvent" && m["guildId"].as_str() == Some(&*guild.to_string())
            })
            .await;
        let reason = end["reason"].as_str().unwrap();
        assert!(
            reason == "finished" || reason == "loadFailed",
            "{what}: {reason}"
        );
    }
    // Exceptions, when there were some, carry the full exception object.
    for m in ws.collect(Duration::from_millis(100)).await {
        if m["type"] == "TrackExceptionEvent" {
            assert!(
                m["exception"]["severity"].is_string() && m["exception"]["cause"].is_string(),
                "{m}"
            );
        }
    }
    let (_, stats) = rig.node.get_json("/v4/stats").await;
    assert!(stats["players"].as_i64().unwrap() > 10);
    // The healthy player kept going the whole time.
    let r = rig.report(100);
    assert_eq!(r.lost_packets, 0);
}

#[tokio::test]
async fn empty_file_and_lying_wav_header() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    let url = rig.media.url("faults/empty.mp3");
    let (_, load) = rig
        .node
        .get_json(&format!(
            "/v4/loadtracks?identifier={}",
            common::rig::urlencode(&url)
        ))
        .await;
    assert!(
        load["loadType"] == "error" || load["loadType"] == "empty",
        "{load}"
    );

    let t = rig.load("faults/ten-hours.wav").await;
    assert_eq!(t["info"]["length"], 36_000_000, "{t}");
    play(&rig, &ws, 4, &t).await;
    let end = ws.expect_event("TrackEndEvent", T).await;
    assert_eq!(end["reason"], "finished");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = rig.report(4);
    let audio: Audio = report_audio(&r);
    let start = audio.onset(-40.0).unwrap() as f64 / 48_000.0;
    let audible = audio.seconds(start, audio.duration_s());
    let loud = audible
        .mono()
        .chunks(960)
        .filter(|w| common::audio::rms_dbfs(w) > -40.0)
        .count();
    assert!(
        (45..=55).contains(&loud),
        "about 1 s of audio, got {} frames",
        loud
    );
}
