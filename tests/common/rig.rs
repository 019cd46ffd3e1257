//! An end-to-end rig: the fake Discord voice server, a media server over the generated test
//! media, and a node that trusts the fake server's CA through `SSL_CERT_FILE`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use fake_discord::{Config, FakeDiscord, Mode, StreamReport};
use serde_json::{Value, json};

use super::audio::Audio;
use super::media_server::MediaServer;
use super::node::{NodeOptions, TestNode, WsClient};

/// The bot's user id the rig's clients identify with.
pub const BOT_USER: u64 = 1234;

pub struct Rig {
    pub discord: FakeDiscord,
    pub node: TestNode,
    pub media: MediaServer,
    pub ca_file: PathBuf,
}

/// What the fake server offers.
#[derive(Clone)]
pub struct RigOptions {
    pub modes: Vec<Mode>,
    pub dave: bool,
    pub node: NodeOptions,
    /// Decode received Opus (off for load runs that only count packets).
    pub decode_audio: bool,
}

impl Default for RigOptions {
    fn default() -> Self {
        RigOptions {
            modes: vec![Mode::Aes256Gcm, Mode::XChaCha20Poly1305],
            dave: true,
            node: NodeOptions::default(),
            decode_audio: true,
        }
    }
}

impl Rig {
    pub async fn start() -> Rig {
        Self::start_with(RigOptions::default()).await
    }

    pub async fn start_with(opts: RigOptions) -> Rig {
        let discord = FakeDiscord::start(Config {
            decode_audio: opts.decode_audio,
            ..Config::default()
        })
        .await
        .expect("fake discord");
        discord.set_behaviour(|b| {
            b.modes = opts.modes.clone();
            b.dave = opts.dave;
        });
        let ca_file =
            std::env::temp_dir().join(format!("acoustic-ca-{:x}.pem", rand::random::<u64>()));
        discord.write_ca_file(&ca_file).unwrap();
        let mut node_opts = opts.node.clone();
        node_opts
            .env
            .push(("SSL_CERT_FILE".into(), ca_file.display().to_string()));
        let node = TestNode::start_with(node_opts).await;
        let media = MediaServer::start(super::media_dir());
        Rig {
            discord,
            node,
            media,
            ca_file,
        }
    }

    /// A client WebSocket for the bot.
    pub async fn ws(&self) -> WsClient {
        self.node
            .ws_with(&[
                ("User-Id", &BOT_USER.to_string()),
                ("Client-Name", "acoustic-e2e/1.0"),
            ])
            .await
    }

    /// Registers a voice session for `guild` at the fake server and returns the PATCH `voice`.
    pub fn voice(&self, guild: u64) -> Value {
        let channel = guild + 1_000_000;
        let (token, session_id) = self.discord.register_session(guild, BOT_USER, channel);
        json!({"token": token, "endpoint": self.discord.endpoint(), "sessionId": session_id, "channelId": channel.to_string()})
    }

    /// Loads a generated media file through the http source; returns the track JSON.
    pub async fn load(&self, media_path: &str) -> Value {
        let url = self.media.url(media_path);
        let (status, body) = self
            .node
            .get_json(&format!("/v4/loadtracks?identifier={}", urlencode(&url)))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["loadType"], "track", "{media_path}: {body}");
        body["data"].clone()
    }

    pub fn player_path(&self, ws: &WsClient, guild: u64) -> String {
        format!("/v4/sessions/{}/players/{guild}", ws.session_id)
    }

    /// Waits until the fake server has `count` packets for `guild`.
    pub async fn wait_packets(&self, guild: u64, count: u64, timeout: Duration) -> bool {
        self.discord.wait_packets(guild, count, timeout).await
    }

    pub fn report(&self, guild: u64) -> StreamReport {
        self.discord
            .stream_report(guild)
            .expect("a stream for the guild")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

/// The decoded PCM of a report as analysable audio.
pub fn report_audio(report: &StreamReport) -> Audio {
    Audio::new(
        48_000,
        2,
        report.pcm.iter().map(|s| *s as f32 / 32768.0).collect(),
    )
}

/// Checks that a stream, from its first packet to its stop, came without a break.
///
/// A frame the node has not got is a 20 ms slot it sends nothing in (and after a few, it stops
/// speaking and sends silence): the slots between the first packet and the last that went
/// empty are counted. Arrival gaps alone are no measure of the node: on a busy machine packets
/// come late now and then, and the ones after them on time.
pub fn assert_played_without_a_break(r: &StreamReport) {
    let report = r.clone().without_media();
    assert_eq!(r.lost_packets, 0, "{report:?}");
    let span = r.last_packet_at.unwrap() - r.first_packet_at.unwrap();
    let slots = (span.as_secs_f64() * 50.0).round() as i64 + 1;
    assert!(
        slots - (r.packets as i64) <= 1,
        "{} of {slots} frames missing while playing: {report:?}",
        slots - r.packets as i64
    );
    // Silence only at the stop (the last five frames).
    assert!(
        r.silence_positions.iter().all(|p| p + 5 >= r.packets),
        "silence while playing: {report:?}"
    );
    assert_eq!(r.speaking.len(), 1, "speaking stopped: {report:?}");
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
