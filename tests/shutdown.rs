//! Graceful shutdown: SIGTERM (and SIGINT) while players play closes every client socket with
//! 1001, stops every voice connection cleanly (five silence frames, `speaking: 0`, close 1000),
//! and the process exits within 2 s — with 100 players playing (SIGTERM) and with 30 (SIGINT).

mod common;

use std::time::{Duration, Instant};

use common::rig::{Rig, RigOptions};
use fake_discord::{Closer, EventKind};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn shutdown_with(signal: libc::c_int, players: u64) {
    // The fake server only counts packets and recognises silence frames: no Opus decoding.
    let mut rig = Rig::start_with(RigOptions {
        decode_audio: false,
        ..Default::default()
    })
    .await;
    let mut ws = rig.ws().await;
    // Opus passthrough keeps many players cheap on a debug build.
    let track = rig.load("staircase/staircase.webm").await;
    for g in 1..=players {
        let (s, _) = rig
            .node
            .patch_json(
                &rig.player_path(&ws, g),
                json!({"track": {"encoded": track["encoded"]}, "voice": rig.voice(g)}),
            )
            .await;
        assert_eq!(s, 200);
    }
    for g in 1..=players {
        assert!(
            rig.wait_packets(g, 25, Duration::from_secs(20)).await,
            "guild {g} playing"
        );
    }
    let (_, stats) = rig.node.get_json("/v4/stats").await;
    assert_eq!(stats["playingPlayers"], players);

    let pid = rig.node.pid().unwrap() as libc::pid_t;
    let sent_at = Instant::now();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let status = rig
        .node
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("the node exits");
    let took = sent_at.elapsed();
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    assert!(status.success(), "{status:?}");

    // The client socket got a close frame with 1001.
    let mut close_code = None;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(1), ws.stream.next()).await {
        if let Ok(Message::Close(frame)) = msg {
            close_code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(close_code, Some(1001));

    // Every voice connection ended cleanly.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = rig.discord.events();
    for g in 1..=players {
        let r = rig.report(g);
        assert!(
            r.silence_frames >= 5,
            "guild {g}: {} silence frames",
            r.silence_frames
        );
        assert_eq!(
            r.speaking.last().map(|s| s.speaking),
            Some(0),
            "guild {g} stopped speaking"
        );
        assert_eq!(r.lost_packets, 0, "guild {g}");
        let closed = events.iter().any(|e| {
            matches!(&e.kind, EventKind::Closed { guild_id: Some(id), by: Closer::Client, code: Some(1000), .. } if *id == g)
        });
        assert!(
            closed,
            "guild {g}: the voice socket was closed with 1000 by the node"
        );
    }
}

#[tokio::test]
async fn sigterm_while_playing() {
    shutdown_with(libc::SIGTERM, 100).await;
}

#[tokio::test]
async fn sigint_while_playing() {
    shutdown_with(libc::SIGINT, 30).await;
}
