//! The fake server driven by a minimal client written from the protocol description: the v8
//! and v4 handshakes, IP discovery, media in both modes, heartbeats, resume with replay, the
//! closes for bad input, DAVE over binary frames, and the handshake counter.

use std::sync::Arc;
use std::time::Duration;

use davey::DaveSession;
use fake_discord::crypto::TransportCipher;
use fake_discord::wire::IpDiscovery;
use fake_discord::{Behaviour, Config, EventKind, FakeDiscord, Mode, audio};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

const GUILD: u64 = 41771983423143937;
const USER: u64 = 80351110224678912;
const CHANNEL: u64 = 127121515262115840;
const T: Duration = Duration::from_secs(5);

struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

enum Received {
    Json(Value),
    Binary(Vec<u8>),
    Closed(Option<u16>, String),
}

impl Client {
    async fn connect(fake: &FakeDiscord, version: u8, tls: bool) -> Client {
        let scheme = if tls { "wss" } else { "ws" };
        let url = format!("{scheme}://{}/?v={version}", fake.endpoint());
        let connector = if tls {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(fake.ca_cert_pem().as_bytes()).unwrap())
                .unwrap();
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(Connector::Rustls(Arc::new(config)))
        } else {
            Some(Connector::Plain)
        };
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector)
            .await
            .expect("connect");
        Client { ws }
    }

    async fn recv(&mut self) -> Received {
        loop {
            let msg = tokio::time::timeout(T, self.ws.next())
                .await
                .expect("a message in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Received::Json(serde_json::from_str(t.as_str()).unwrap());
                }
                Some(Ok(Message::Binary(b))) => return Received::Binary(b.to_vec()),
                Some(Ok(Message::Close(f))) => {
                    return Received::Closed(
                        f.as_ref().map(|f| u16::from(f.code)),
                        f.map(|f| f.reason.to_string()).unwrap_or_default(),
                    );
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Received::Closed(None, String::new()),
            }
        }
    }

    async fn json(&mut self) -> Value {
        match self.recv().await {
            Received::Json(v) => v,
            Received::Binary(b) => panic!("expected JSON, got binary {b:?}"),
            Received::Closed(c, r) => panic!("expected JSON, got close {c:?} {r}"),
        }
    }

    async fn binary(&mut self) -> Vec<u8> {
        match self.recv().await {
            Received::Binary(b) => b,
            Received::Json(v) => panic!("expected binary, got {v}"),
            Received::Closed(c, r) => panic!("expected binary, got close {c:?} {r}"),
        }
    }

    async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Received::Closed(code, _) = self.recv().await {
                return code;
            }
        }
    }

    async fn send(&mut self, op: u8, d: Value) {
        self.ws
            .send(Message::text(json!({"op": op, "d": d}).to_string()))
            .await
            .unwrap();
    }

    async fn send_binary(&mut self, op: u8, payload: &[u8]) {
        let mut b = vec![op];
        b.extend_from_slice(payload);
        self.ws.send(Message::binary(b)).await.unwrap();
    }

    async fn identify(&mut self, token: &str, session_id: &str, max_dave: Option<u16>) {
        let mut d = json!({
            "server_id": GUILD.to_string(), "user_id": USER.to_string(),
            "session_id": session_id, "token": token,
        });
        if let Some(v) = max_dave {
            d["max_dave_protocol_version"] = json!(v);
        }
        self.send(0, d).await;
    }
}

/// Hello → Identify → Ready → IP discovery → Select Protocol → Session Description.
/// Returns (client, udp socket, ssrc, cipher, session description).
async fn handshake(
    fake: &FakeDiscord,
    version: u8,
    tls: bool,
    mode: Mode,
    max_dave: Option<u16>,
    creds: &(String, String),
) -> (Client, UdpSocket, u32, TransportCipher, Value) {
    let mut c = Client::connect(fake, version, tls).await;
    let hello = c.json().await;
    assert_eq!(hello["op"], 8);
    assert_eq!(hello["d"]["heartbeat_interval"], 13_750);
    assert!(hello.get("seq").is_none(), "Hello is not sequenced");
    c.identify(&creds.0, &creds.1, max_dave).await;
    let ready = c.json().await;
    assert_eq!(ready["op"], 2);
    let ssrc = ready["d"]["ssrc"].as_u64().unwrap() as u32;
    let modes: Vec<&str> = ready["d"]["modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(modes.contains(&mode.as_str()));
    assert!(modes.iter().all(|m| !m.contains("xsalsa20")));

    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = format!(
        "{}:{}",
        ready["d"]["ip"].as_str().unwrap(),
        ready["d"]["port"]
    );
    udp.connect(&server).await.unwrap();
    udp.send(&IpDiscovery::request(ssrc)).await.unwrap();
    let mut buf = [0u8; 100];
    let n = tokio::time::timeout(T, udp.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let resp = IpDiscovery::parse(&buf[..n]).expect("a 74-byte discovery response");
    let local = udp.local_addr().unwrap();
    assert_eq!((resp.kind, resp.ssrc), (2, ssrc));
    assert_eq!(resp.address, local.ip().to_string());
    assert_eq!(resp.port, local.port());

    c.send(1, json!({"protocol": "udp", "data": {"address": resp.address, "port": resp.port, "mode": mode.as_str()}}))
        .await;
    let sd = c.json().await;
    assert_eq!(sd["op"], 4);
    assert_eq!(sd["d"]["mode"], mode.as_str());
    let key: Vec<u8> = sd["d"]["secret_key"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    let key: [u8; 32] = key.try_into().expect("a 32-byte key");
    (c, udp, ssrc, TransportCipher::new(mode, &key), sd)
}

fn sine_frames(freq: f64, frames: usize) -> Vec<Vec<u8>> {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
    (0..frames)
        .map(|f| {
            let pcm: Vec<i16> = (0..960)
                .flat_map(|i| {
                    let t = (f * 960 + i) as f64 / 48_000.0;
                    let v = (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16;
                    [v, v]
                })
                .collect();
            enc.encode_vec(&pcm, 4000).unwrap()
        })
        .collect()
}

async fn start(behaviour: Behaviour) -> FakeDiscord {
    FakeDiscord::start(Config {
        behaviour,
        ..Config::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn v8_over_tls_media_in_both_modes_is_decrypted_decoded_and_reported() {
    for mode in [Mode::Aes256Gcm, Mode::XChaCha20Poly1305] {
        let fake = start(Behaviour::default()).await;
        let creds = fake.register_session(GUILD, USER, CHANNEL);
        let (mut c, udp, ssrc, cipher, sd) = handshake(&fake, 8, true, mode, None, &creds).await;
        assert_eq!(
            sd["d"]["dave_protocol_version"], 0,
            "client offered no DAVE"
        );
        assert_eq!(sd["seq"], 2, "Ready was seq 1, Session Description seq 2");
        assert!(fake.wait_connected(GUILD, T).await);

        c.send(3, json!({"t": 1234, "seq_ack": 2})).await;
        let ack = c.json().await;
        assert_eq!(ack, json!({"op": 6, "d": {"t": 1234}}));
        c.send(5, json!({"speaking": 1, "delay": 0, "ssrc": ssrc}))
            .await;
        fake.wait_event(T, |e| matches!(e.kind, EventKind::Speaking { .. }))
            .await
            .unwrap();

        let frames = sine_frames(440.0, 50);
        let (seq0, ts0, nonce0) = (65_530u16, 4_000_000_000u32, u32::MAX - 3);
        for (i, f) in frames
            .iter()
            .chain(std::iter::repeat_n(&vec![0xF8, 0xFF, 0xFE], 5))
            .enumerate()
        {
            let i32_ = i as u32;
            let pkt = cipher.encrypt(
                seq0.wrapping_add(i as u16),
                ts0.wrapping_add(960 * i32_),
                ssrc,
                nonce0.wrapping_add(i32_),
                f,
            );
            udp.send(&pkt).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A tampered packet counts as a transport failure, not as audio.
        let mut bad = cipher.encrypt(
            seq0.wrapping_add(55),
            ts0.wrapping_add(960 * 55),
            ssrc,
            nonce0.wrapping_add(55),
            &frames[0],
        );
        bad[14] ^= 1;
        udp.send(&bad).await.unwrap();
        assert!(fake.wait_packets(GUILD, 56, T).await);

        let r = fake.stream_report(GUILD).unwrap();
        assert_eq!(r.mode, Some(mode));
        assert_eq!(r.packets, 56);
        assert_eq!(
            (r.lost_packets, r.duplicates, r.reordered, r.timestamp_jumps),
            (0, 0, 0, 0),
            "{r:?}"
        );
        assert_eq!(r.nonce_discontinuities, 0);
        assert_eq!(r.transport_decrypt_failures, 1);
        assert_eq!(r.silence_frames, 5);
        assert_eq!(r.silence_positions, vec![50, 51, 52, 53, 54]);
        assert_eq!(r.packets_before_speaking, 0);
        assert_eq!(
            r.opus_frames[..50],
            frames[..],
            "decrypted Opus equals what was sent"
        );
        let pps = r.packets_per_second.unwrap();
        assert!((35.0..=52.0).contains(&pps), "{pps}");
        assert_eq!(r.speaking.len(), 1);
        let tone = audio::measure(&audio::to_mono(&r.pcm[9600..86400]), 48_000.0);
        assert!((tone.frequency_hz.unwrap() - 440.0).abs() < 2.0, "{tone:?}");
        assert!((tone.rms_dbfs + 9.03).abs() < 1.0, "{tone:?}");
    }
}

#[tokio::test]
async fn v4_uses_plain_nonces_and_no_sequence_numbers() {
    let fake = start(Behaviour::default()).await;
    let creds = fake.register_session(GUILD, USER, CHANNEL);
    let (mut c, _udp, _ssrc, _cipher, sd) =
        handshake(&fake, 4, false, Mode::XChaCha20Poly1305, None, &creds).await;
    assert!(sd.get("seq").is_none());
    c.send(3, json!(987654321)).await;
    assert_eq!(c.json().await, json!({"op": 6, "d": 987654321}));
}

#[tokio::test]
async fn bad_identify_mode_and_missing_dave_are_closed_with_their_codes() {
    let fake = start(Behaviour::default()).await;
    let creds = fake.register_session(GUILD, USER, CHANNEL);

    let mut c = Client::connect(&fake, 8, false).await;
    c.json().await;
    c.identify("wrong-token", &creds.1, Some(1)).await;
    assert_eq!(c.closed().await, Some(4004));

    let mut c = Client::connect(&fake, 8, false).await;
    c.json().await;
    c.send(1, json!({"protocol": "udp", "data": {}})).await;
    assert_eq!(
        c.closed().await,
        Some(4003),
        "Select Protocol before Identify"
    );

    fake.set_behaviour(|b| b.modes = vec![Mode::XChaCha20Poly1305]);
    let mut c = Client::connect(&fake, 8, false).await;
    c.json().await;
    c.identify(&creds.0, &creds.1, Some(1)).await;
    let ready = c.json().await;
    assert_eq!(
        ready["d"]["modes"],
        json!(["aead_xchacha20_poly1305_rtpsize"])
    );
    c.send(1, json!({"protocol": "udp", "data": {"address": "127.0.0.1", "port": 1, "mode": "aead_aes256_gcm_rtpsize"}}))
        .await;
    assert_eq!(c.closed().await, Some(4016));

    fake.set_behaviour(|b| b.require_dave = true);
    for max_dave in [None, Some(0)] {
        let mut c = Client::connect(&fake, 8, false).await;
        c.json().await;
        c.identify(&creds.0, &creds.1, max_dave).await;
        assert_eq!(c.closed().await, Some(4017));
    }
    let closed = |f: &FakeDiscord| {
        f.events()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Closed { .. }))
            .count()
    };
    assert!(fake.wait_until(T, |f| closed(f) == 5).await);
    let closes: Vec<Option<u16>> = fake
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Closed { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(
        closes,
        vec![Some(4004), Some(4003), Some(4016), Some(4017), Some(4017)]
    );
}

#[tokio::test]
async fn v8_resume_replays_what_was_missed_and_bad_resumes_are_refused() {
    let fake = start(Behaviour::default()).await;
    let creds = fake.register_session(GUILD, USER, CHANNEL);
    let (mut c, ..) = handshake(&fake, 8, false, Mode::Aes256Gcm, None, &creds).await;
    fake.send_json(
        GUILD,
        5,
        json!({"user_id": "1", "ssrc": 9, "speaking": 1}),
        true,
    )
    .unwrap();
    let seen = c.json().await;
    assert_eq!(seen["seq"], 3);
    assert!(fake.drop_connection(GUILD));
    assert_eq!(c.closed().await, None, "dropped without a close frame");
    fake.wait_until(T, |f| !f.is_connected(GUILD)).await;
    // Sent while the client is away: buffered.
    fake.send_json(GUILD, 13, json!({"user_id": "2"}), true)
        .unwrap();
    fake.send_json(GUILD, 13, json!({"user_id": "3"}), true)
        .unwrap();

    let resume = |token: &str, seq_ack: i64| json!({"server_id": GUILD.to_string(), "session_id": creds.1, "token": token, "seq_ack": seq_ack});
    let mut bad = Client::connect(&fake, 8, false).await;
    bad.json().await;
    bad.send(7, resume("not-the-token", 3)).await;
    assert_eq!(bad.closed().await, Some(4006));

    let mut c = Client::connect(&fake, 8, false).await;
    assert_eq!(c.json().await["op"], 8);
    c.send(7, resume(&creds.0, 3)).await;
    assert_eq!(c.json().await, json!({"op": 9, "d": null}));
    let a = c.json().await;
    let b = c.json().await;
    assert_eq!(
        (a["op"].clone(), a["seq"].clone(), a["d"]["user_id"].clone()),
        (json!(13), json!(4), json!("2"))
    );
    assert_eq!(
        (b["seq"].clone(), b["d"]["user_id"].clone()),
        (json!(5), json!("3"))
    );
    assert!(fake.is_connected(GUILD));

    // A scripted 4014 ends the session: it cannot be resumed.
    assert!(fake.close(GUILD, 4014, ""));
    assert_eq!(c.closed().await, Some(4014));
    let mut c = Client::connect(&fake, 8, false).await;
    c.json().await;
    c.send(7, resume(&creds.0, 5)).await;
    assert_eq!(c.closed().await, Some(4006));

    // Refusing resumes is scriptable too.
    let (mut c, ..) = handshake(&fake, 8, false, Mode::Aes256Gcm, None, &creds).await;
    assert!(fake.close(GUILD, 4015, "crash"));
    assert_eq!(c.closed().await, Some(4015));
    fake.set_behaviour(|b| b.reject_resumes = true);
    let mut c = Client::connect(&fake, 8, false).await;
    c.json().await;
    c.send(7, resume(&creds.0, 2)).await;
    assert_eq!(c.closed().await, Some(4006));
}

#[tokio::test]
async fn missing_heartbeats_close_4009() {
    let fake = start(Behaviour {
        heartbeat_interval_ms: 100,
        heartbeat_timeout_ms: Some(300),
        ..Behaviour::default()
    })
    .await;
    let creds = fake.register_session(GUILD, USER, CHANNEL);
    let mut c = Client::connect(&fake, 8, false).await;
    assert_eq!(c.json().await["d"]["heartbeat_interval"], 100);
    c.identify(&creds.0, &creds.1, None).await;
    c.json().await;
    assert_eq!(c.closed().await, Some(4009));
}

#[tokio::test]
async fn dave_over_v8_binary_frames_then_downgrade() {
    let fake = start(Behaviour::default()).await;
    let creds = fake.register_session(GUILD, USER, CHANNEL);
    let (mut c, udp, ssrc, cipher, sd) =
        handshake(&fake, 8, true, Mode::Aes256Gcm, Some(1), &creds).await;
    assert_eq!(sd["d"]["dave_protocol_version"], 1);
    let clients = c.json().await;
    assert_eq!(
        (clients["op"].clone(), clients["seq"].clone()),
        (json!(11), json!(3))
    );
    let listener: u64 = clients["d"]["user_ids"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ext = c.binary().await;
    assert_eq!(
        &ext[..3],
        &[0, 4, 25],
        "seq 4 as big-endian u16, then op 25"
    );

    let mut dave =
        DaveSession::new(std::num::NonZeroU16::new(1).unwrap(), USER, CHANNEL, None).unwrap();
    dave.set_external_sender(&ext[3..]).unwrap();
    c.send_binary(26, &dave.create_key_package().unwrap()).await;
    let welcome = c.binary().await;
    assert_eq!(welcome[2], 30);
    let tid = u16::from_be_bytes([welcome[3], welcome[4]]);
    dave.process_welcome(&welcome[5..], Some(&[USER, listener]))
        .unwrap();
    dave.prepare_transition(tid, 1).unwrap();
    c.send(23, json!({"transition_id": tid})).await;
    let exec = c.json().await;
    assert_eq!(
        (exec["op"].clone(), exec["d"]["transition_id"].clone()),
        (json!(22), json!(tid))
    );
    dave.execute_transition(tid).unwrap();
    assert!(fake.wait_dave_ready(GUILD, T).await);
    c.send(5, json!({"speaking": 1, "delay": 0, "ssrc": ssrc}))
        .await;

    let frames = sine_frames(300.0, 20);
    for (i, f) in frames.iter().enumerate() {
        let e2ee = dave.encrypt_opus(f).unwrap().into_owned();
        udp.send(&cipher.encrypt(i as u16, 960 * i as u32, ssrc, i as u32, &e2ee))
            .await
            .unwrap();
    }
    assert!(fake.wait_packets(GUILD, 20, T).await);
    let r = fake.stream_report(GUILD).unwrap();
    assert_eq!(
        (r.dave_frames, r.dave_decrypt_failures, r.plain_frames),
        (20, 0, 0),
        "{r:?}"
    );
    assert_eq!(
        r.opus_frames, frames,
        "DAVE-decrypted frames equal the Opus sent"
    );

    // Downgrade: op 21 (version 0) → op 23 → op 22, then plain Opus is expected.
    fake.dave_downgrade(GUILD).unwrap();
    let prep = c.json().await;
    assert_eq!(
        (prep["op"].clone(), prep["d"]["protocol_version"].clone()),
        (json!(21), json!(0))
    );
    let tid = prep["d"]["transition_id"].as_u64().unwrap();
    c.send(23, json!({"transition_id": tid})).await;
    assert_eq!(c.json().await["op"], 22);
    assert_eq!(fake.dave_status(GUILD).unwrap().protocol_version, 0);
    for (i, f) in frames.iter().enumerate() {
        let i = i + 20;
        udp.send(&cipher.encrypt(i as u16, 960 * i as u32, ssrc, i as u32, f))
            .await
            .unwrap();
    }
    assert!(fake.wait_packets(GUILD, 40, T).await);
    let r = fake.stream_report(GUILD).unwrap();
    assert_eq!(
        (r.dave_frames, r.plain_frames, r.plain_frames_while_dave),
        (20, 20, 0)
    );
    assert_eq!(r.dave_protocol_version, 0);
}

#[tokio::test]
async fn concurrent_handshakes_are_counted() {
    let fake = start(Behaviour {
        hello_delay_ms: 500,
        ..Behaviour::default()
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(Client::connect(&fake, 8, false).await);
    }
    assert!(fake.wait_until(T, |f| f.counters().connections == 20).await);
    let c = fake.counters();
    assert_eq!(c.max_concurrent_handshakes, 20, "{c:?}");
    for c in clients.iter_mut() {
        assert_eq!(c.json().await["op"], 8);
    }
}

#[tokio::test]
async fn control_protocol_mirrors_the_api() {
    let fake = start(Behaviour::default()).await;
    let input = concat!(
        r#"{"id":1,"cmd":"register_session","guild_id":5,"user_id":6,"channel_id":7}"#,
        "\n",
        r#"{"id":2,"cmd":"set_behaviour","behaviour":{"reject_resumes":true}}"#,
        "\n",
        r#"{"id":3,"cmd":"set_behaviour","behaviour":{"no_such_field":1}}"#,
        "\n",
        r#"{"id":4,"cmd":"wait_connected","guild_id":5,"timeout_ms":10}"#,
        "\n",
        r#"{"id":5,"cmd":"shutdown"}"#,
        "\n",
        r#"{"id":6,"cmd":"info"}"#,
        "\n",
    );
    let mut out = Vec::new();
    fake_discord::control::serve(&fake, input.as_bytes(), &mut out)
        .await
        .unwrap();
    let replies: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 5, "nothing after shutdown");
    assert_eq!(replies[0]["ok"], true);
    assert_eq!(replies[0]["result"]["endpoint"], fake.endpoint());
    assert_eq!(replies[0]["result"]["token"].as_str().unwrap().len(), 32);
    assert_eq!(replies[1]["result"]["reject_resumes"], true);
    assert!(fake.behaviour().reject_resumes);
    assert_eq!(replies[2]["ok"], false);
    assert_eq!(replies[3]["result"], false);
    assert_eq!(replies[4]["id"], 5);
}

/// Joins the DAVE group as a davey client: external sender, key package, welcome, transition.
async fn join_dave(c: &mut Client, dave: &mut DaveSession, listener: u64) {
    let ext = c.binary().await;
    assert_eq!(ext[2], 25);
    dave.set_external_sender(&ext[3..]).unwrap();
    c.send_binary(26, &dave.create_key_package().unwrap()).await;
    welcome_and_execute(c, dave, listener).await;
}

async fn welcome_and_execute(c: &mut Client, dave: &mut DaveSession, listener: u64) {
    let welcome = c.binary().await;
    assert_eq!(welcome[2], 30, "welcome");
    let tid = u16::from_be_bytes([welcome[3], welcome[4]]);
    dave.process_welcome(&welcome[5..], Some(&[USER, listener]))
        .unwrap();
    dave.prepare_transition(tid, 1).unwrap();
    c.send(23, json!({"transition_id": tid})).await;
    assert_eq!(c.json().await["op"], 22);
    dave.execute_transition(tid).unwrap();
}

#[tokio::test]
async fn invalid_commit_recovery_and_sole_member_scripts() {
    let fake = start(Behaviour::default()).await;
    let creds = fake.register_session(GUILD, USER, CHANNEL);
    let (mut c, udp, ssrc, cipher, _) =
        handshake(&fake, 8, false, Mode::Aes256Gcm, Some(1), &creds).await;
    let listener: u64 = c.json().await["d"]["user_ids"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut dave =
        DaveSession::new(std::num::NonZeroU16::new(1).unwrap(), USER, CHANNEL, None).unwrap();
    join_dave(&mut c, &mut dave, listener).await;
    assert_eq!(fake.dave_status(GUILD).unwrap().epoch, 1);

    // A commit that cannot be processed: the client answers op 31 and a new key package, and
    // is welcomed into the next epoch (its old leaf removed, the new one added).
    fake.dave_invalid_commit(GUILD).unwrap();
    let bad = c.binary().await;
    assert_eq!(bad[2], 29);
    let tid = u16::from_be_bytes([bad[3], bad[4]]);
    assert!(dave.process_commit(&bad[5..]).is_err());
    c.send(31, json!({"transition_id": tid})).await;
    dave.reinit(std::num::NonZeroU16::new(1).unwrap(), USER, CHANNEL, None)
        .unwrap();
    c.send_binary(26, &dave.create_key_package().unwrap()).await;
    welcome_and_execute(&mut c, &mut dave, listener).await;
    let status = fake.dave_status(GUILD).unwrap();
    assert_eq!(
        (status.epoch, status.bot_in_group, status.media_keys_live),
        (2, true, true)
    );
    let frame = dave
        .encrypt_opus(&sine_frames(200.0, 1)[0])
        .unwrap()
        .into_owned();
    c.send(5, json!({"speaking": 1, "delay": 0, "ssrc": ssrc}))
        .await;
    udp.send(&cipher.encrypt(1, 960, ssrc, 1, &frame))
        .await
        .unwrap();
    assert!(fake.wait_packets(GUILD, 1, T).await);
    let r = fake.stream_report(GUILD).unwrap();
    assert_eq!((r.dave_frames, r.dave_decrypt_failures), (1, 0), "{r:?}");

    // Sole member: the listener leaves, a new epoch is prepared and transition 0 executes.
    fake.dave_sole_member(GUILD).unwrap();
    let ops: Vec<(Value, Value)> = [c.json().await, c.json().await, c.json().await]
        .into_iter()
        .map(|m| (m["op"].clone(), m["d"].clone()))
        .collect();
    assert_eq!(
        ops[0],
        (json!(13), json!({"user_id": listener.to_string()}))
    );
    assert_eq!(
        ops[1],
        (json!(24), json!({"protocol_version": 1, "epoch": 1}))
    );
    assert_eq!(
        ops[2],
        (
            json!(21),
            json!({"protocol_version": 1, "transition_id": 0})
        )
    );
    let status = fake.dave_status(GUILD).unwrap();
    assert!(status.listeners.is_empty() && !status.bot_in_group && !status.media_keys_live);
    let sent: Vec<u8> = fake
        .events()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::DaveReceived { op, .. } => Some(op),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![26, 23, 31, 26, 23]);
}
