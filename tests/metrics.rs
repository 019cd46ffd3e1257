//! `/metrics`: off by default; when enabled, unauthenticated Prometheus text that a real
//! Prometheus parser reads, with Lavalink's series and Acoustic's voice/frame/load series.

mod common;

use std::time::Duration;

use common::node::{NodeOptions, TestNode};
use common::rig::{Rig, RigOptions};
use serde_json::json;

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text")
}

fn value(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    label: Option<(&str, &str)>,
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref h) => {
                h.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            _ => f64::NAN,
        })
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let node = TestNode::start().await;
    let r = reqwest::get(node.url("/metrics")).await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "without metrics enabled /metrics is just an unknown, authenticated path"
    );
}

#[tokio::test]
async fn metrics_scrape_with_a_real_parser() {
    let rig = Rig::start_with(RigOptions {
        node: NodeOptions {
            top_yaml: "metrics:\n  prometheus:\n    enabled: true\n    endpoint: /metrics\n".into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut ws = rig.ws().await;
    let track = rig.load("staircase/staircase.flac").await;
    rig.media.script(
        "broken.mp3",
        common::media_server::Script::new().server_error(),
    );
    let (s, _) = rig
        .node
        .get_json(&format!(
            "/v4/loadtracks?identifier={}",
            common::rig::urlencode(&rig.media.url("broken.mp3"))
        ))
        .await;
    assert_eq!(s, 200);
    let path = rig.player_path(&ws, 11);
    rig.node
        .patch_json(
            &path,
            json!({"track": {"encoded": track["encoded"]}, "voice": rig.voice(11)}),
        )
        .await;
    ws.expect_event("TrackStartEvent", Duration::from_secs(10))
        .await;
    assert!(rig.wait_packets(11, 50, Duration::from_secs(10)).await);

    // Unauthenticated.
    let text = reqwest::get(rig.node.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = parse(&text);
    assert_eq!(
        value(&scrape, "lavalink_players_total", None),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&scrape, "lavalink_playing_players_total", None),
        Some(1.0)
    );
    assert!(value(&scrape, "lavalink_uptime_milliseconds", None).unwrap() > 0.0);
    assert!(value(&scrape, "lavalink_memory_used_bytes", None).unwrap() > 1e6);
    assert!(value(&scrape, "lavalink_cpu_cores", None).unwrap() >= 1.0);
    assert!(
        value(&scrape, "acoustic_frames_sent_total", None).unwrap() >= 50.0,
        "{text}"
    );
    assert!(value(&scrape, "acoustic_frames_nulled_total", None).is_some());
    assert!(value(&scrape, "acoustic_frames_deficit_total", None).is_some());
    assert_eq!(
        value(
            &scrape,
            "acoustic_voice_connections",
            Some(("state", "ready"))
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&scrape, "acoustic_voice_handshakes_in_flight", None),
        Some(0.0)
    );
    assert_eq!(
        value(
            &scrape,
            "acoustic_track_loads_total",
            Some(("load_type", "track"))
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &scrape,
            "acoustic_source_errors_total",
            Some(("source", "http"))
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("acoustic_track_load_duration_seconds_bucket"),
        "{text}"
    );

    // A close shows up by code.
    rig.discord.close(11, 4006, "session no longer valid");
    ws.expect_event("WebSocketClosedEvent", Duration::from_secs(10))
        .await;
    let text = reqwest::get(rig.node.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = parse(&text);
    assert_eq!(
        value(
            &scrape,
            "acoustic_voice_close_codes_total",
            Some(("code", "4006"))
        ),
        Some(1.0),
        "{text}"
    );
}
