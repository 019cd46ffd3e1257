//! End to end: a client loads media over the http source, PATCHes a track and the fake
//! Discord server's voice state, and the audio that reaches the fake server is decrypted,
//! decoded and compared with the source (a tone staircase: second k is 200 + 100·k Hz).
//! Also the §12 player items that need audio or voice (41–53).

mod common;

use std::time::{Duration, Instant};

use common::audio::{Audio, rms_dbfs, staircase_step, staircase_steps, tone_dbfs};
use common::rig::{Rig, RigOptions, report_audio};
use fake_discord::Mode;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

/// Checks second k of `audio` (starting at `first_step`) is staircase step `first_step + k`.
fn assert_staircase(audio: &Audio, first_step: usize, seconds: usize, what: &str) {
    let steps = staircase_steps(&audio.mono(), audio.rate);
    let want: Vec<Option<usize>> = (first_step..first_step + seconds).map(Some).collect();
    assert!(
        steps.len() >= seconds,
        "{what}: only {} seconds of audio: {steps:?}",
        steps.len()
    );
    let got = &steps[..seconds];
    let matching = got.iter().zip(&want).filter(|(a, b)| a == b).count();
    // The first second may straddle the onset; every later one must match.
    assert!(
        matching >= seconds - 1,
        "{what}: steps {got:?}, want {want:?}"
    );
}

/// Audio from the first non-silent sample.
fn from_onset(audio: &Audio) -> Audio {
    let start = audio.onset(-40.0).unwrap_or(0) as f64 / audio.rate as f64;
    audio.seconds(start, audio.duration_s())
}

async fn play(
    rig: &Rig,
    ws: &common::node::WsClient,
    guild: u64,
    track: &Value,
    extra: Value,
) -> (u16, Value) {
    let mut body = json!({"track": {"encoded": track["encoded"]}, "voice": rig.voice(guild)});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    rig.node.patch_json(&rig.player_path(ws, guild), body).await
}

#[tokio::test]
async fn mp3_staircase_reaches_discord_intact() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    let track = rig.load("staircase/staircase.mp3").await;
    assert_eq!(track["info"]["title"], "Acoustic Staircase");
    let patched_at = rig.discord.started_at().elapsed();
    let (s, p) = play(&rig, &ws, 1, &track, json!({})).await;
    assert_eq!(s, 200, "{p}");
    let start = ws.expect_event("TrackStartEvent", T).await;
    // The started track is the one the client played, byte for byte: a client may match the
    // event to its queue by `encoded` (its position is the start position, 0).
    assert_eq!(start["track"]["encoded"], track["encoded"]);
    assert_eq!(start["track"]["info"]["position"], 0);
    let end = ws
        .expect_event("TrackEndEvent", Duration::from_secs(20))
        .await;
    assert_eq!(end["reason"], "finished");
    // The silence frames follow the last audio frame.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let r = rig.report(1);
    eprintln!("report: {:?}", r.clone().without_media());
    assert_eq!(r.decrypt_failures(), 0, "{:?}", r.clone().without_media());
    assert_eq!(r.lost_packets, 0, "sequence gaps: {:?}", r.seq_gap_list);
    assert_eq!(r.timestamp_jumps, 0, "{:?}", r.timestamp_jump_list);
    assert!(
        r.dave_frames > 0 && r.plain_frames_while_dave == 0,
        "DAVE on: {:?}",
        r.clone().without_media()
    );
    let pps = r.packets_per_second.unwrap();
    assert!((49.0..=51.0).contains(&pps), "packets/s {pps}");
    assert!(
        r.packets >= 495,
        "10 s of audio is ~500 packets, got {}",
        r.packets
    );
    let first_audio = r.first_audio_at.unwrap();
    assert!(
        first_audio.saturating_sub(patched_at) < Duration::from_millis(300),
        "audio started {:?} after the PATCH",
        first_audio.saturating_sub(patched_at)
    );
    assert!(r.silence_frames >= 5, "five silence frames after the audio");

    let audio = from_onset(&report_audio(&r));
    assert_staircase(&audio, 0, 10, "mp3 over voice");
    // Level: the staircase is a 0.5-amplitude sine: −9.03 dBFS RMS.
    let level = rms_dbfs(&audio.seconds(1.0, 9.0).mono());
    assert!((level + 9.03).abs() < 1.0, "level {level:.2} dBFS");
}

#[tokio::test]
async fn every_mode_with_and_without_dave() {
    for (modes, dave) in [
        (vec![Mode::XChaCha20Poly1305], true),
        (vec![Mode::XChaCha20Poly1305], false),
        (vec![Mode::Aes256Gcm, Mode::XChaCha20Poly1305], false),
    ] {
        let rig = Rig::start_with(RigOptions {
            modes: modes.clone(),
            dave,
            ..Default::default()
        })
        .await;
        let mut ws = rig.ws().await;
        let track = rig.load("staircase/staircase.flac").await;
        let (s, _) = play(&rig, &ws, 5, &track, json!({"endTime": 3500})).await;
        assert_eq!(s, 200);
        let end = ws.expect_event("TrackEndEvent", T).await;
        assert_eq!(end["reason"], "finished");
        let r = rig.report(5);
        let what = format!("{modes:?} dave={dave}");
        assert_eq!(r.mode, Some(modes[0]), "{what}");
        assert_eq!(r.decrypt_failures(), 0, "{what}");
        assert_eq!(r.lost_packets, 0, "{what}");
        if dave {
            assert!(r.dave_frames > 0, "{what}");
        } else {
            assert_eq!(r.dave_frames, 0, "{what}");
        }
        let audio = from_onset(&report_audio(&r));
        assert_staircase(&audio, 0, 3, &what);
    }
}

// 41, 47, 48 (cadence), 49
#[tokio::test]
async fn start_event_seek_and_end_time() {
    let rig = Rig::start_with(RigOptions {
        node: common::node::NodeOptions {
            server_yaml: "    playerUpdateInterval: 1\n".into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut ws = rig.ws().await;
    let track = rig.load("staircase/staircase-44k.wav").await;
    let path = rig.player_path(&ws, 2);
    let (s, p) = rig
        .node
        .patch_json(&path, json!({"track": {"encoded": track["encoded"], "userData": {"a": 1}}, "voice": rig.voice(2)}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["track"]["userData"], json!({"a": 1}));
    assert_eq!(
        p["track"]["info"]["identifier"],
        track["info"]["identifier"]
    );
    let start = ws.expect_event("TrackStartEvent", T).await;
    assert_eq!(start["track"]["userData"], json!({"a": 1}));
    assert_eq!(start["guildId"], "2");
    ws.expect_op("playerUpdate", T).await;
    assert!(rig.discord.wait_connected(2, T).await);
    let update = ws
        .expect("connected playerUpdate", T, |m| {
            m["op"] == "playerUpdate" && m["state"]["connected"] == true
        })
        .await;
    assert!(update["state"]["ping"].as_i64().unwrap() >= 0);

    // Seek to 6 s: an immediate playerUpdate, and the audio continues at step 6.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = rig.report(2).pcm.len();
    let (s, _) = rig
        .node
        .patch_json(&path, json!({"position": 6000, "endTime": 8000}))
        .await;
    assert_eq!(s, 200);
    let up = ws
        .expect(
            "playerUpdate after the seek",
            Duration::from_millis(500),
            |m| m["op"] == "playerUpdate" && m["state"]["position"].as_i64().unwrap_or(0) >= 6000,
        )
        .await;
    assert!(up["state"]["position"].as_i64().unwrap() < 6500, "{up}");
    let end = ws.expect_event("TrackEndEvent", T).await;
    assert_eq!(end["reason"], "finished", "endTime reached");
    let r = rig.report(2);
    let after = Audio::new(
        48_000,
        2,
        r.pcm[before..]
            .iter()
            .map(|s| *s as f32 / 32768.0)
            .collect(),
    );
    // Skip what was buffered before the seek (≤ ~150 ms), then expect 6 → 7 and an end near 8 s.
    let tail = after.seconds(0.2, after.duration_s());
    let steps = staircase_steps(&tail.mono(), 48_000);
    assert!(
        steps.iter().flatten().all(|s| *s == 6 || *s == 7),
        "after seek: {steps:?}"
    );
    let audible = tail.duration_s() - silence_tail(&tail);
    assert!(
        (audible - 1.8).abs() < 0.3,
        "played {audible:.2} s of the 6–8 s range"
    );

    // Updates arrive every second while a track is loaded; none after it ended.
    let _earlier = ws.collect(Duration::ZERO).await;
    let msgs = ws.collect(Duration::from_millis(2500)).await;
    assert!(
        !msgs.iter().any(|m| m["op"] == "playerUpdate"),
        "no playerUpdate after the end: {msgs:?}"
    );
}

/// Seconds of trailing near-silence.
fn silence_tail(audio: &Audio) -> f64 {
    let mono = audio.mono();
    let win = 480;
    let mut n = 0;
    for chunk in mono.rchunks(win) {
        if rms_dbfs(chunk) > -50.0 {
            break;
        }
        n += chunk.len();
    }
    n as f64 / 48_000.0
}

// 42, 43, 44, 45, 46, 52
#[tokio::test]
async fn replace_stop_noreplace_pause_userdata_delete() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    let a = rig.load("staircase/staircase.flac").await;
    let b = rig.load("staircase/staircase.ogg").await;
    let path = rig.player_path(&ws, 3);
    play(&rig, &ws, 3, &a, json!({})).await;
    ws.expect_event("TrackStartEvent", T).await;

    // noReplace with a track playing: nothing changes, no events.
    let (_, p) = rig
        .node
        .patch_json(
            &format!("{path}?noReplace=true"),
            json!({"track": {"encoded": b["encoded"]}}),
        )
        .await;
    assert_eq!(p["track"]["info"]["uri"], a["info"]["uri"]);
    let msgs = ws.collect(Duration::from_millis(400)).await;
    assert!(!msgs.iter().any(|m| m["op"] == "event"), "{msgs:?}");

    // Replacing: end(replaced) for the old one, then start of the new one.
    rig.node
        .patch_json(&path, json!({"track": {"encoded": b["encoded"]}}))
        .await;
    let end = ws.expect_event("TrackEndEvent", T).await;
    assert_eq!(end["reason"], "replaced");
    assert_eq!(end["track"]["info"]["uri"], a["info"]["uri"]);
    let start = ws.expect_event("TrackStartEvent", T).await;
    assert_eq!(start["track"]["info"]["uri"], b["info"]["uri"]);

    // userData replaced without events.
    let (_, p) = rig
        .node
        .patch_json(&path, json!({"track": {"userData": {"b": 2}}}))
        .await;
    assert_eq!(p["track"]["userData"], json!({"b": 2}));
    let msgs = ws.collect(Duration::from_millis(300)).await;
    assert!(!msgs.iter().any(|m| m["op"] == "event"), "{msgs:?}");

    // Pause, then a new track without `paused` un-pauses; with paused:true stays paused.
    let (_, p) = rig.node.patch_json(&path, json!({"paused": true})).await;
    assert_eq!(p["paused"], true);
    let (_, p) = rig
        .node
        .patch_json(&path, json!({"track": {"encoded": a["encoded"]}}))
        .await;
    assert_eq!(p["paused"], false);
    let (_, p) = rig
        .node
        .patch_json(
            &path,
            json!({"track": {"encoded": b["encoded"]}, "paused": true}),
        )
        .await;
    assert_eq!(p["paused"], true);

    // Stop.
    let (_, p) = rig
        .node
        .patch_json(&path, json!({"track": {"encoded": null}}))
        .await;
    assert!(p["track"].is_null());
    let end = ws
        .expect("stopped end", T, |m| {
            m["type"] == "TrackEndEvent" && m["reason"] == "stopped"
        })
        .await;
    assert_eq!(end["track"]["info"]["uri"], b["info"]["uri"]);

    // noReplace with nothing playing starts the track.
    let (_, p) = rig
        .node
        .patch_json(
            &format!("{path}?noReplace=true"),
            json!({"track": {"encoded": a["encoded"]}}),
        )
        .await;
    assert_eq!(p["track"]["info"]["uri"], a["info"]["uri"]);
    ws.expect("start after noReplace", T, |m| {
        m["type"] == "TrackStartEvent" && m["track"]["info"]["uri"] == a["info"]["uri"]
    })
    .await;

    // DELETE with a track playing: stopped.
    let r = rig
        .node
        .http()
        .delete(rig.node.url(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let end = ws
        .expect("end on delete", T, |m| {
            m["type"] == "TrackEndEvent" && m["reason"] == "stopped"
        })
        .await;
    assert_eq!(end["guildId"], "3");
}

// Pause is audible and position stops; volume 50 follows Lavalink's curve.
#[tokio::test]
async fn pause_and_volume_are_heard() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    let tone = rig.load("signals/tone-1k.wav").await;
    let path = rig.player_path(&ws, 4);
    play(&rig, &ws, 4, &tone, json!({})).await;
    ws.expect_event("TrackStartEvent", T).await;
    assert!(rig.wait_packets(4, 60, T).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mark = rig.report(4).pcm.len();
    let (_, _) = rig.node.patch_json(&path, json!({"volume": 50})).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = rig.report(4);
    let full = Audio::new(
        48_000,
        2,
        r.pcm[..mark].iter().map(|s| *s as f32 / 32768.0).collect(),
    );
    let half = Audio::new(
        48_000,
        2,
        r.pcm[mark..].iter().map(|s| *s as f32 / 32768.0).collect(),
    );
    let a = tone_dbfs(
        &full
            .seconds(full.duration_s() - 0.4, full.duration_s())
            .mono(),
        48_000,
        1000.0,
    );
    let b = tone_dbfs(&half.seconds(0.3, half.duration_s()).mono(), 48_000, 1000.0);
    // Lavalink's curve: multiplier trunc(tan(50 · 0.0079) · 10000) / 10000 = 0.4169 → −7.60 dB.
    let want = 20.0 * (((50.0f64 * 0.0079).tan() * 10000.0).trunc() / 10000.0).log10();
    assert!(
        ((b - a) - want).abs() < 0.5,
        "volume 50 changed the level by {:.2} dB, want {want:.2}",
        b - a
    );

    let (_, p) = rig.node.patch_json(&path, json!({"paused": true})).await;
    let pos = p["state"]["position"].as_i64().unwrap();
    let packets = rig.discord.packets(4);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, p) = rig.node.get_json(&path).await;
    assert!(
        (p["state"]["position"].as_i64().unwrap() - pos).abs() <= 200,
        "position stays while paused"
    );
    assert!(
        rig.discord.packets(4) - packets <= 12,
        "≤ ~120 ms of buffered audio plus five silence frames after pause"
    );
    let r = rig.report(4);
    assert!(
        r.speaking.last().is_some_and(|s| s.speaking == 0),
        "speaking 0 after pausing: {:?}",
        r.speaking
    );
    let (_, _) = rig.node.patch_json(&path, json!({"paused": false})).await;
    let before = rig.discord.packets(4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        rig.discord.packets(4) - before >= 20,
        "resumes after un-pausing"
    );
}

// 51 with voice: an unplayable track gives an exception at once and loadFailed when drained.
#[tokio::test]
async fn unplayable_track_fails_with_load_failed() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    let track = rig.load("staircase/staircase.flac").await;
    // Make the URL fail from now on.
    rig.media.script(
        "staircase/staircase.flac",
        common::media_server::Script::new().not_found(),
    );
    play(&rig, &ws, 6, &track, json!({})).await;
    let ex = ws.expect_event("TrackExceptionEvent", T).await;
    for k in ["message", "severity", "cause", "causeStackTrace"] {
        assert!(ex["exception"].get(k).is_some(), "{k} in {ex}");
    }
    let end = ws.expect_event("TrackEndEvent", T).await;
    assert_eq!(end["reason"], "loadFailed");
    let started = Instant::now();
    // The node still serves other players.
    let ok = rig.load("staircase/staircase.ogg").await;
    play(&rig, &ws, 7, &ok, json!({})).await;
    ws.expect_event("TrackStartEvent", T).await;
    assert!(started.elapsed() < T);
}

/// Joins voice for `guild` and waits for the `playerUpdate` that says connected; returns it
/// and the player as `GET` shows it then.
async fn join_voice(rig: &Rig, ws: &mut common::node::WsClient, guild: u64) -> (Value, Value) {
    let path = rig.player_path(ws, guild);
    let (s, _) = rig
        .node
        .patch_json(&path, json!({"voice": rig.voice(guild)}))
        .await;
    assert_eq!(s, 200);
    assert!(rig.discord.wait_connected(guild, T).await);
    let up = ws
        .expect("connected", T, |m| {
            m["op"] == "playerUpdate" && m["state"]["connected"] == true
        })
        .await;
    let (_, player) = rig.node.get_json(&path).await;
    assert_eq!(player["state"]["connected"], true);
    (up, player)
}

// 53: connected before the first heartbeat ACK reports ping 0, not -1 ("no connection").
#[tokio::test]
async fn ping_is_zero_until_the_first_heartbeat_ack() {
    let rig = Rig::start().await;
    rig.discord.set_behaviour(|b| b.ack_heartbeats = false);
    let mut ws = rig.ws().await;
    let (up, player) = join_voice(&rig, &mut ws, 9).await;
    assert_eq!(up["state"]["ping"], 0, "{up}");
    assert_eq!(player["state"]["ping"], 0, "{player}");
}

// 53: voice connects, then a 4006 close becomes a WebSocketClosedEvent and a playerUpdate.
#[tokio::test]
async fn voice_close_is_reported() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    let (up, player) = join_voice(&rig, &mut ws, 8).await;
    assert!(up["state"]["ping"].as_i64().unwrap() >= 0);
    assert_eq!(player["voice"]["channelId"], "1000008");

    rig.discord.close(8, 4006, "session no longer valid");
    let ev = ws.expect_event("WebSocketClosedEvent", T).await;
    assert_eq!(ev["code"], 4006);
    assert_eq!(ev["byRemote"], true);
    assert!(ev["reason"].is_string());
    ws.expect("update after close", T, |m| {
        m["op"] == "playerUpdate" && m["state"]["connected"] == false
    })
    .await;
}

// Opus in WebM with no filters and volume 100 is passed through byte for byte.
#[tokio::test]
async fn webm_opus_is_passed_through() {
    let rig = Rig::start().await;
    let mut ws = rig.ws().await;
    let track = rig.load("staircase/staircase.webm").await;
    play(&rig, &ws, 9, &track, json!({"endTime": 2000})).await;
    ws.expect_event("TrackEndEvent", T).await;
    let r = rig.report(9);
    let source = opus_packets(&common::media("staircase/staircase.webm"));
    let sent: Vec<&Vec<u8>> = r
        .opus_frames
        .iter()
        .filter(|f| f.as_slice() != [0xF8, 0xFF, 0xFE])
        .collect();
    assert!(sent.len() >= 95, "{} frames", sent.len());
    for (i, f) in sent.iter().take(95).enumerate() {
        assert_eq!(
            f.as_slice(),
            source[i].as_slice(),
            "frame {i} differs from the source packet"
        );
    }
}

/// The Opus packets of a WebM/Ogg file, read with symphonia independently of the node.
fn opus_packets(path: &std::path::Path) -> Vec<Vec<u8>> {
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::io::MediaSourceStream;
    let file = std::fs::File::open(path).unwrap();
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(&hint, mss, Default::default(), Default::default())
        .unwrap();
    let mut out = Vec::new();
    while let Ok(Some(p)) = format.next_packet() {
        out.push(p.data.to_vec());
    }
    out
}

#[allow(dead_code)]
fn step_of(hz: f64) -> Option<usize> {
    staircase_step(hz)
}
