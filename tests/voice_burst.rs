//! A bot reconnecting many guilds at once: 200 simultaneous voice PATCHes answer at once, all
//! connect through the handshake gate (at most 32 handshakes at a time), and REST keeps
//! answering meanwhile. (Latency figures are measured by `benches/load.rs`, not asserted here.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::rig::{Rig, RigOptions};
use serde_json::json;

#[tokio::test]
async fn two_hundred_voice_patches_all_connect_while_rest_answers() {
    let rig = Rig::start_with(RigOptions {
        decode_audio: false,
        ..Default::default()
    })
    .await;
    let ws = rig.ws().await;
    let guilds: Vec<u64> = (1..=200).collect();
    let bodies: Vec<_> = guilds
        .iter()
        .map(|g| (rig.player_path(&ws, *g), json!({"voice": rig.voice(*g)})))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    // Poll from a thread of its own (plain blocking HTTP), so the fake server sharing this
    // test's runtime cannot delay the measurement.
    let poller = {
        let addr = rig.node.addr;
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let status = blocking_get(addr, "/v4/stats");
                assert_eq!(status, 200);
                worst = worst.max(t.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (n, worst)
        })
    };
    let node = &rig.node;
    let results = futures_util::future::join_all(
        bodies
            .iter()
            .map(|(path, body)| async move { node.patch_json(path, body.clone()).await }),
    )
    .await;
    assert!(results.iter().all(|(s, _)| *s == 200));
    for g in &guilds {
        assert!(
            rig.discord
                .wait_connected(*g, Duration::from_secs(90))
                .await,
            "guild {g} connected"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (n, worst) = poller.join().unwrap();
    eprintln!("{n} stats requests during the burst, slowest {worst:?}");
    assert!(n > 5);
    assert!(
        worst < Duration::from_secs(2),
        "a stats request took {worst:?} during the burst"
    );
    let max = rig.discord.counters().max_concurrent_handshakes;
    assert!(max <= 32, "{max} handshakes at once");
    // The fake server counts a guild connected when it sends the session description; the
    // node marks its player connected once it has read it, a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, players) = rig
            .node
            .get_json(&format!("/v4/sessions/{}/players", ws.session_id))
            .await;
        let connected = players
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["state"]["connected"] == true)
            .count();
        if connected == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{connected} of 200 players report connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A minimal HTTP/1.1 GET with the password; returns the status code.
fn blocking_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        common::node::PASSWORD
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
