//! Settings of a fake Discord voice server: fixed ones (`Config`) and the ones a test may
//! change while the server runs (`Behaviour`).

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::Mode;
use crate::dave::DaveJoin;

/// How the endpoint handed to clients names the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointHost {
    /// "127.0.0.1:PORT"
    #[default]
    Ip,
    /// "localhost:PORT"
    Localhost,
}

/// Fixed settings, given at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address the gateway (TCP) and media (UDP) sockets bind to.
    pub bind_ip: IpAddr,
    /// Gateway port (0 = any). The port speaks both `wss://` and plain `ws://`.
    pub port: u16,
    /// UDP port (0 = any).
    pub udp_port: u16,
    pub endpoint_host: EndpointHost,
    /// Decode received Opus to PCM (turn off for load tests that only count packets).
    pub decode_audio: bool,
    /// How much decoded audio each stream keeps.
    pub keep_pcm: Duration,
    /// How many decrypted Opus frames each stream keeps.
    pub keep_opus_frames: usize,
    /// Initial runtime behaviour.
    pub behaviour: Behaviour,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            udp_port: 0,
            endpoint_host: EndpointHost::Ip,
            decode_audio: true,
            keep_pcm: Duration::from_secs(120),
            keep_opus_frames: 6000,
            behaviour: Behaviour::default(),
        }
    }
}

/// Settings a test may change while the server runs (`FakeDiscord::set_behaviour`).
/// A change applies to connections and sessions started after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// Encryption modes offered in Ready, in this order.
    pub modes: Vec<Mode>,
    /// Offer DAVE (Session Description's `dave_protocol_version` = 1 when the client
    /// announced `max_dave_protocol_version` >= 1).
    pub dave: bool,
    /// Close with 4017 when Identify's `max_dave_protocol_version` is 0 or absent.
    pub require_dave: bool,
    /// Listener members already in the call when the bot joins (they decrypt its media).
    pub dave_listeners: u32,
    pub dave_join: DaveJoin,
    /// The `heartbeat_interval` sent in Hello.
    pub heartbeat_interval_ms: u64,
    /// Close with 4009 when no heartbeat came for this long; `None` = 2 × interval + 1 s.
    pub heartbeat_timeout_ms: Option<u64>,
    /// Answer heartbeats with op 6 Heartbeat ACK (off: the client never learns its ping).
    pub ack_heartbeats: bool,
    /// Refuse every Resume (close 4006).
    pub reject_resumes: bool,
    /// Wait this long after the socket opens before Hello.
    pub hello_delay_ms: u64,
    /// Wait this long after Identify before Ready.
    pub ready_delay_ms: u64,
    /// Wait this long after Select Protocol before Session Description.
    pub session_description_delay_ms: u64,
    /// First sequence number of a new session (v8), to test wrap-around.
    pub initial_seq: u16,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            modes: vec![Mode::Aes256Gcm, Mode::XChaCha20Poly1305],
            dave: true,
            require_dave: false,
            dave_listeners: 1,
            dave_join: DaveJoin::WelcomeBot,
            heartbeat_interval_ms: 13_750,
            heartbeat_timeout_ms: None,
            ack_heartbeats: true,
            reject_resumes: false,
            hello_delay_ms: 0,
            ready_delay_ms: 0,
            session_description_delay_ms: 0,
            initial_seq: 1,
        }
    }
}

impl Behaviour {
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(
            self.heartbeat_timeout_ms
                .unwrap_or(2 * self.heartbeat_interval_ms + 1000),
        )
    }
}
