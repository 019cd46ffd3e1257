//! End-to-end tests of the voice client: `VoiceConnection` + the pacer against the fake
//! Discord voice server (`tests/fake-discord`), which decrypts and decodes every packet.
//!
//! The fake servers run on a background runtime shared by all tests, one per behaviour
//! (modes offered, DAVE on/off, scripted faults). Their generated CAs are written to one file
//! that `SSL_CERT_FILE` points at before any `VoiceContext` loads the trust store — the same
//! way a deployment adds a CA; the node has no test-only TLS path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use acoustic::voice::{
    FrameOutcome, FrameSource, MAX_OPUS_PACKET, PacerKey, VoiceConnection, VoiceContext,
    VoiceEvent, VoiceServerInfo, VoiceSettings, VoiceSlot,
};
use fake_discord::{Behaviour, Closer, Config, DaveJoin, EventKind, FakeDiscord, Mode};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

const BOT_USER: u64 = 900_000_000_000_000_001;

// ---- the shared fake servers -------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Server {
    AesDave,
    XChaChaDave,
    AesPlain,
    XChaChaPlain,
    BotCommits,
    Faults,
    RejectResume,
    RequireDave,
    Load,
}

const SERVERS: [Server; 9] = [
    Server::AesDave,
    Server::XChaChaDave,
    Server::AesPlain,
    Server::XChaChaPlain,
    Server::BotCommits,
    Server::Faults,
    Server::RejectResume,
    Server::RequireDave,
    Server::Load,
];

fn config_for(server: Server) -> Config {
    let mut c = Config::default();
    let b: &mut Behaviour = &mut c.behaviour;
    match server {
        Server::AesDave | Server::Faults => {}
        Server::XChaChaDave => b.modes = vec![Mode::XChaCha20Poly1305],
        Server::AesPlain => b.dave = false,
        Server::XChaChaPlain => {
            b.modes = vec![Mode::XChaCha20Poly1305];
            b.dave = false;
        }
        Server::BotCommits => b.dave_join = DaveJoin::BotCommits,
        Server::RejectResume => b.reject_resumes = true,
        Server::RequireDave => b.require_dave = true,
        Server::Load => {
            b.dave = false;
            c.decode_audio = false;
        }
    }
    c
}

struct Pool {
    _runtime: tokio::runtime::Runtime,
    servers: HashMap<Server, FakeDiscord>,
}

fn fake(server: Server) -> &'static FakeDiscord {
    static POOL: OnceLock<Pool> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        // Built on its own thread: tests run inside their own runtimes.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let mut servers = HashMap::new();
            let mut bundle = String::new();
            for s in SERVERS {
                let f = runtime.block_on(FakeDiscord::start(config_for(s))).unwrap();
                bundle.push_str(f.ca_cert_pem());
                bundle.push('\n');
                servers.insert(s, f);
            }
            let path = std::env::temp_dir()
                .join(format!("acoustic-voice-e2e-ca-{}.pem", std::process::id()));
            std::fs::write(&path, bundle).unwrap();
            // SAFETY: runs once, before any VoiceContext exists; every other test thread is
            // blocked on this OnceLock, so nothing reads the environment concurrently.
            unsafe {
                std::env::set_var("SSL_CERT_FILE", &path);
                std::env::remove_var("SSL_CERT_DIR");
            }
            Pool {
                _runtime: runtime,
                servers,
            }
        })
        .join()
        .unwrap()
    });
    &pool.servers[&server]
}

fn context(settings: VoiceSettings) -> Arc<VoiceContext> {
    fake(Server::AesDave); // the trust store must be in place first
    VoiceContext::new(settings)
}

fn next_guild() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(10_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

// ---- audio ---------------------------------------------------------------------------------

const AMPLITUDE: f64 = 0.5;
const STEP_SECONDS: usize = 3;

/// Second k is a (200 + 100·k) Hz sine, stereo, Opus at 128 kbit/s in 20 ms frames.
fn staircase() -> &'static [Vec<u8>] {
    static FRAMES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
        enc.set_bitrate(opus::Bitrate::Bits(128_000)).unwrap();
        let mut phase = 0.0f64;
        let mut frames = Vec::new();
        for frame in 0..STEP_SECONDS * 50 {
            let freq = 200.0 + 100.0 * (frame / 50) as f64;
            let mut pcm = [0i16; 1920];
            for i in 0..960 {
                let v = (AMPLITUDE * phase.sin() * 32767.0) as i16;
                pcm[2 * i] = v;
                pcm[2 * i + 1] = v;
                phase += 2.0 * std::f64::consts::PI * freq / 48_000.0;
            }
            let mut out = [0u8; 4000];
            let n = enc.encode(&pcm, &mut out).unwrap();
            frames.push(out[..n].to_vec());
        }
        frames
    })
}

/// Plays the staircase (once or looped) while `playing` is 1.
struct Clip {
    frames: &'static [Vec<u8>],
    pos: usize,
    looping: bool,
    playing: Arc<AtomicU8>,
}

impl FrameSource for Clip {
    fn next_frame(&mut self, out: &mut [u8; MAX_OPUS_PACKET]) -> FrameOutcome {
        if self.playing.load(Ordering::Relaxed) == 0 {
            return FrameOutcome::Idle;
        }
        if self.pos == self.frames.len() {
            if !self.looping {
                return FrameOutcome::Idle;
            }
            self.pos = 0;
        }
        let f = &self.frames[self.pos];
        out[..f.len()].copy_from_slice(f);
        self.pos += 1;
        FrameOutcome::Frame(f.len())
    }
}

/// Amplitude of the `freq` component of `x` (Goertzel).
fn amplitude_at(x: &[f64], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - c * s1 * s2;
    2.0 * power.sqrt() / x.len() as f64
}

/// The decoded audio is the staircase: the right tone each second, level within ±1 dB.
fn assert_staircase(pcm: &[i16]) {
    let left: Vec<f64> = pcm.iter().step_by(2).map(|&s| s as f64 / 32768.0).collect();
    assert!(
        left.len() >= STEP_SECONDS * 48_000,
        "only {} samples decoded",
        left.len()
    );
    for k in 0..STEP_SECONDS {
        let seg = &left[k * 48_000 + 4_800..(k + 1) * 48_000 - 4_800];
        let freq = 200.0 + 100.0 * k as f64;
        let want = amplitude_at(seg, freq);
        for other in [150.0, 250.0, 350.0, 450.0, 1000.0]
            .into_iter()
            .filter(|f| *f != freq)
        {
            let got = amplitude_at(seg, other);
            assert!(
                want > 50.0 * got,
                "second {k}: {freq} Hz {want:.4} vs {other} Hz {got:.4}"
            );
        }
        let rms = (seg.iter().map(|v| v * v).sum::<f64>() / seg.len() as f64).sqrt();
        let db = 20.0 * (rms / (AMPLITUDE / 2f64.sqrt())).log10();
        assert!(db.abs() <= 1.0, "second {k}: level off by {db:.2} dB");
    }
}

// ---- one player's call ---------------------------------------------------------------------

struct Call {
    fake: &'static FakeDiscord,
    ctx: Arc<VoiceContext>,
    guild: u64,
    slot: Arc<VoiceSlot>,
    key: Option<PacerKey>,
    playing: Arc<AtomicU8>,
    conn: Option<VoiceConnection>,
    events: mpsc::UnboundedReceiver<VoiceEvent>,
    events_tx: mpsc::UnboundedSender<VoiceEvent>,
}

fn info_for(fake: &FakeDiscord, guild: u64) -> VoiceServerInfo {
    let channel = guild + 7;
    let (token, session_id) = fake.register_session(guild, BOT_USER, channel);
    VoiceServerInfo {
        guild_id: guild,
        user_id: BOT_USER,
        channel_id: channel,
        session_id,
        token,
        endpoint: fake.endpoint(),
    }
}

impl Call {
    fn start(server: Server, ctx: &Arc<VoiceContext>, looping: bool) -> Call {
        let fake = fake(server);
        let guild = next_guild();
        let slot = VoiceSlot::new();
        let playing = Arc::new(AtomicU8::new(1));
        let key = ctx.register(
            slot.clone(),
            Box::new(Clip {
                frames: staircase(),
                pos: 0,
                looping,
                playing: playing.clone(),
            }),
        );
        let (events_tx, events) = mpsc::unbounded_channel();
        let conn =
            VoiceConnection::connect(ctx, info_for(fake, guild), slot.clone(), events_tx.clone());
        Call {
            fake,
            ctx: ctx.clone(),
            guild,
            slot,
            key: Some(key),
            playing,
            conn: Some(conn),
            events,
            events_tx,
        }
    }

    async fn event(&mut self, secs: u64) -> Option<VoiceEvent> {
        timeout(Duration::from_secs(secs), self.events.recv())
            .await
            .ok()
            .flatten()
    }

    async fn expect_ready(&mut self) {
        assert_eq!(self.event(15).await, Some(VoiceEvent::Ready));
        assert!(self.conn().is_connected());
        assert!(self.slot.is_ready());
    }

    fn conn(&self) -> &VoiceConnection {
        self.conn.as_ref().unwrap()
    }

    async fn wait_more_packets(&self, more: u64) {
        let target = self.fake.packets(self.guild) + more;
        assert!(
            self.fake
                .wait_packets(self.guild, target, Duration::from_secs(20))
                .await,
            "expected {target} packets, have {}",
            self.fake.packets(self.guild)
        );
    }

    fn count_events(&self, f: impl Fn(&EventKind) -> bool) -> usize {
        self.fake.events().iter().filter(|e| f(&e.kind)).count()
    }

    fn identifies(&self) -> usize {
        let g = self.guild;
        self.count_events(|k| matches!(k, EventKind::Identified { guild_id, .. } if *guild_id == g))
    }

    async fn wait_dave(&self, pred: impl Fn(&fake_discord::DaveStatus) -> bool) {
        let g = self.guild;
        assert!(
            self.fake
                .wait_until(Duration::from_secs(15), |d| d
                    .dave_status(g)
                    .is_some_and(|s| pred(&s)))
                .await,
            "DAVE state not reached: {:?}",
            self.fake.dave_status(g)
        );
    }

    async fn finish(mut self) {
        if let Some(c) = self.conn.take() {
            c.disconnect().await;
        }
        if let Some(k) = self.key.take() {
            self.ctx.unregister(k);
        }
    }
}

fn assert_clean(r: &fake_discord::StreamReport) {
    assert_eq!(r.seq_gaps, 0, "gaps: {:?}", r.seq_gap_list);
    assert_eq!(r.lost_packets, 0);
    assert_eq!(r.duplicates, 0);
    assert_eq!(r.reordered, 0);
    assert_eq!(r.timestamp_jumps, 0, "{:?}", r.timestamp_jump_list);
    assert_eq!(r.nonce_discontinuities, 0);
    assert_eq!(r.bad_headers, 0);
    assert_eq!(r.transport_decrypt_failures, 0);
    assert_eq!(r.dave_decrypt_failures, 0);
    assert_eq!(r.opus_decode_errors, 0);
    assert_eq!(r.packets_before_speaking, 0);
    assert_eq!(r.packets_from_other_address, 0);
}

// ---- audio in every mode -------------------------------------------------------------------

async fn plays_the_staircase(server: Server, mode: Mode, dave: bool) {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(server, &ctx, false);
    call.expect_ready().await;
    let frames = staircase().len() as u64;
    assert!(
        call.fake
            .wait_packets(call.guild, frames + 5, Duration::from_secs(20))
            .await
    );
    // Give the server time to see packets we should not have sent.
    sleep(Duration::from_millis(300)).await;
    let r = call.fake.stream_report(call.guild).unwrap();
    assert_eq!(r.mode, Some(mode));
    assert_eq!(r.dave_protocol_version, u16::from(dave));
    assert_eq!(r.packets, frames + 5, "the clip, then five silence frames");
    assert_clean(&r);
    assert_eq!(r.silence_frames, 5);
    if dave {
        assert_eq!((r.dave_frames, r.plain_frames), (frames, 0));
    } else {
        assert_eq!((r.dave_frames, r.plain_frames), (0, frames));
    }
    let pps = r.packets_per_second.unwrap();
    assert!((45.0..=55.0).contains(&pps), "{pps} packets/s");
    assert_ne!(r.speaking.first().map(|s| s.speaking), Some(0));
    assert_eq!(
        r.speaking.last().map(|s| s.speaking),
        Some(0),
        "speaking 0 after the silence"
    );
    assert_staircase(&r.pcm);
    assert_eq!(call.slot.frame_counts().sent, frames);
    call.finish().await;
}

#[tokio::test]
async fn aes_gcm_with_dave_delivers_the_audio() {
    plays_the_staircase(Server::AesDave, Mode::Aes256Gcm, true).await;
}

#[tokio::test]
async fn xchacha_with_dave_delivers_the_audio() {
    plays_the_staircase(Server::XChaChaDave, Mode::XChaCha20Poly1305, true).await;
}

#[tokio::test]
async fn aes_gcm_without_dave_delivers_the_audio() {
    plays_the_staircase(Server::AesPlain, Mode::Aes256Gcm, false).await;
}

#[tokio::test]
async fn xchacha_without_dave_delivers_the_audio() {
    plays_the_staircase(Server::XChaChaPlain, Mode::XChaCha20Poly1305, false).await;
}

#[tokio::test]
async fn bot_committing_the_group_delivers_dave_audio() {
    plays_the_staircase(Server::BotCommits, Mode::Aes256Gcm, true).await;
}

#[tokio::test]
async fn pause_sends_silence_and_resume_speaks_again() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::AesPlain, &ctx, true);
    call.expect_ready().await;
    call.wait_more_packets(40).await;
    call.playing.store(0, Ordering::Relaxed);
    sleep(Duration::from_millis(400)).await;
    let paused = call.fake.stream_report(call.guild).unwrap();
    assert_eq!(paused.silence_frames, 5);
    assert_eq!(paused.speaking.last().map(|s| s.speaking), Some(0));
    sleep(Duration::from_millis(200)).await;
    assert_eq!(
        call.fake.packets(call.guild),
        paused.packets,
        "nothing sent while paused"
    );
    call.playing.store(1, Ordering::Relaxed);
    call.wait_more_packets(20).await;
    let r = call.fake.stream_report(call.guild).unwrap();
    assert_clean(&r);
    let speaking: Vec<u64> = r.speaking.iter().map(|s| s.speaking).collect();
    assert_eq!(
        speaking.iter().filter(|&&s| s != 0).count(),
        2,
        "{speaking:?}"
    );
    call.finish().await;
}

#[tokio::test]
async fn a_quiet_connection_sends_udp_keepalives() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::AesPlain, &ctx, true);
    call.expect_ready().await;
    call.wait_more_packets(40).await;
    let playing = call.fake.stream_report(call.guild).unwrap();
    assert_eq!(playing.keepalives, 0, "no keepalive while audio flows");
    call.playing.store(0, Ordering::Relaxed);
    let g = call.guild;
    assert!(
        call.fake
            .wait_until(Duration::from_secs(12), |f| f
                .stream_report(g)
                .is_some_and(|r| r.keepalives >= 1))
            .await,
        "no keepalive within 12 s of pausing"
    );
    let r = call.fake.stream_report(g).unwrap();
    // Five seconds (250 ticks) after the last packet, the fifth silence frame.
    let quiet = r.last_keepalive_at.unwrap() - r.last_packet_at.unwrap();
    assert!(
        quiet >= Duration::from_millis(4_900),
        "keepalive {quiet:?} after the last packet"
    );
    assert_eq!(r.packets, call.fake.packets(g), "the keepalive is not RTP");
    call.playing.store(1, Ordering::Relaxed);
    call.wait_more_packets(20).await;
    assert_clean(&call.fake.stream_report(g).unwrap());
    call.finish().await;
}

// ---- connection state, teardown --------------------------------------------------------------

#[tokio::test]
async fn ping_is_measured_and_disconnect_is_clean() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::AesDave, &ctx, true);
    assert!(!call.conn().is_connected());
    call.expect_ready().await;
    let mut ping = -1;
    for _ in 0..60 {
        ping = call.conn().ping_ms();
        if ping >= 0 {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    assert!(ping >= 0, "no heartbeat ACK measured");
    call.wait_more_packets(30).await;
    let g = call.guild;
    call.conn.take().unwrap().disconnect().await;
    assert!(!call.slot.is_ready());
    let closed = call
        .fake
        .wait_event(
            Duration::from_secs(5),
            |e| matches!(&e.kind, EventKind::Closed { guild_id: Some(id), .. } if *id == g),
        )
        .await
        .expect("server saw the close");
    assert!(
        matches!(
            closed.kind,
            EventKind::Closed {
                code: Some(1000),
                by: Closer::Client,
                ..
            }
        ),
        "{closed:?}"
    );
    let r = call.fake.stream_report(g).unwrap();
    assert_eq!(r.silence_frames, 5);
    assert_eq!(r.speaking.last().map(|s| s.speaking), Some(0));
    assert_clean(&r);
    assert_eq!(
        call.event(1).await,
        None,
        "a requested disconnect is not reported as a close"
    );
    call.finish().await;
}

#[tokio::test]
async fn dropping_the_connection_tears_it_down() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::AesPlain, &ctx, true);
    call.expect_ready().await;
    call.wait_more_packets(10).await;
    let g = call.guild;
    drop(call.conn.take());
    let closed = call
        .fake
        .wait_event(
            Duration::from_secs(5),
            |e| matches!(&e.kind, EventKind::Closed { guild_id: Some(id), .. } if *id == g),
        )
        .await
        .expect("server saw the close");
    assert!(matches!(
        closed.kind,
        EventKind::Closed {
            code: Some(1000),
            by: Closer::Client,
            ..
        }
    ));
    assert!(!call.slot.is_ready());
    call.finish().await;
}

#[tokio::test]
async fn a_new_connection_for_the_player_takes_over_its_slot() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::AesPlain, &ctx, true);
    call.expect_ready().await;
    call.wait_more_packets(20).await;
    // Server move: the bot got a new voice server; the player connects there.
    let moved_to = fake(Server::XChaChaPlain);
    let old = call.conn.take().unwrap();
    let new = VoiceConnection::connect(
        &ctx,
        info_for(moved_to, call.guild),
        call.slot.clone(),
        call.events_tx.clone(),
    );
    drop(old);
    call.conn = Some(new);
    call.fake = moved_to;
    call.expect_ready().await;
    call.wait_more_packets(50).await;
    let r = moved_to.stream_report(call.guild).unwrap();
    assert_clean(&r);
    assert_eq!(r.mode, Some(Mode::XChaCha20Poly1305));
    call.finish().await;
}

// ---- scripted closes -------------------------------------------------------------------------

async fn close_is_reported_not_retried(code: u16) {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::Faults, &ctx, true);
    call.expect_ready().await;
    assert!(call.fake.close(call.guild, code, ""));
    match call.event(5).await {
        Some(VoiceEvent::Closed {
            code: c, by_remote, ..
        }) => {
            assert_eq!(c, code);
            assert!(by_remote);
        }
        other => panic!("expected a close event, got {other:?}"),
    }
    assert!(!call.conn().is_connected());
    assert!(!call.slot.is_ready());
    assert_eq!(call.conn().ping_ms(), -1);
    // Longer than the first retry's backoff: no reconnect happened.
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(call.identifies(), 1);
    assert_eq!(call.event(0).await, None);
    assert!(ctx.metrics().close_codes.contains(&(code, 1)));
    call.finish().await;
}

#[tokio::test]
async fn close_4006_is_reported() {
    close_is_reported_not_retried(4006).await;
}

#[tokio::test]
async fn close_4014_is_never_retried() {
    close_is_reported_not_retried(4014).await;
}

#[tokio::test]
async fn close_4017_is_reported_not_looped() {
    close_is_reported_not_retried(4017).await;
}

#[tokio::test]
async fn close_4022_is_never_retried() {
    close_is_reported_not_retried(4022).await;
}

#[tokio::test]
async fn identifying_without_dave_gets_4017_once() {
    let ctx = context(VoiceSettings {
        max_dave_protocol_version: 0,
        ..VoiceSettings::default()
    });
    let mut call = Call::start(Server::RequireDave, &ctx, true);
    match call.event(10).await {
        Some(VoiceEvent::Closed {
            code: 4017,
            by_remote: true,
            ..
        }) => {}
        other => panic!("expected 4017, got {other:?}"),
    }
    sleep(Duration::from_millis(1500)).await;
    let g = call.guild;
    let rejected = call.count_events(|k| {
        matches!(k, EventKind::IdentifyRejected { guild_id: Some(id), code: 4017, .. } if *id == g)
    });
    assert_eq!(rejected, 1, "one attempt, no retry loop");
    assert_eq!(call.event(0).await, None);
    call.finish().await;
}

async fn drop_is_resumed(close: impl Fn(&FakeDiscord, u64) -> bool) {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::Faults, &ctx, true);
    call.expect_ready().await;
    call.wait_dave(|s| s.media_keys_live).await;
    call.wait_more_packets(50).await;
    let g = call.guild;
    assert!(close(call.fake, g));
    let resumed = call
        .fake
        .wait_event(
            Duration::from_secs(10),
            |e| matches!(&e.kind, EventKind::Resumed { guild_id, .. } if *guild_id == g),
        )
        .await
        .expect("the client resumed");
    assert!(
        matches!(resumed.kind, EventKind::Resumed { seq_ack: Some(s), .. } if s >= 1),
        "{resumed:?}"
    );
    assert_eq!(call.event(5).await, Some(VoiceEvent::Ready));
    assert!(call.conn().is_connected());
    call.wait_more_packets(100).await;
    assert_eq!(call.identifies(), 1, "resumed, not re-identified");
    let reports = call.fake.stream_reports(g, false);
    assert_eq!(reports.len(), 1, "the same stream carried on");
    assert_clean(&reports[0]);
    assert_eq!(reports[0].plain_frames_while_dave, 0);
    assert_eq!(call.event(0).await, None, "no close reported");
    call.finish().await;
}

#[tokio::test]
async fn close_4015_is_resumed() {
    drop_is_resumed(|f, g| f.close(g, 4015, "")).await;
}

#[tokio::test]
async fn plain_drop_is_resumed() {
    drop_is_resumed(|f, g| f.drop_connection(g)).await;
}

#[tokio::test]
async fn failed_resume_falls_back_to_a_fresh_connection() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::RejectResume, &ctx, true);
    call.expect_ready().await;
    call.wait_more_packets(20).await;
    let g = call.guild;
    assert!(call.fake.close(g, 4015, ""));
    assert_eq!(call.event(15).await, Some(VoiceEvent::Ready));
    assert_eq!(call.identifies(), 2);
    assert_eq!(
        call.count_events(
            |k| matches!(k, EventKind::ResumeRejected { guild_id: Some(id), .. } if *id == g)
        ),
        1
    );
    call.wait_more_packets(50).await;
    let reports = call.fake.stream_reports(g, false);
    assert_eq!(
        reports.len(),
        2,
        "a new stream (new SSRC) after the fresh connect"
    );
    assert_clean(&reports[1]);
    assert_eq!(call.event(0).await, None);
    call.finish().await;
}

#[tokio::test]
async fn retries_are_bounded() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::Faults, &ctx, true);
    call.expect_ready().await;
    let g = call.guild;
    for _ in 0..3 {
        assert!(call.fake.close(g, 4015, ""));
        assert_eq!(call.event(10).await, Some(VoiceEvent::Ready));
    }
    assert!(call.fake.close(g, 4015, ""));
    match call.event(10).await {
        Some(VoiceEvent::Closed {
            code: 4015,
            by_remote: true,
            ..
        }) => {}
        other => panic!("expected the fourth 4015 to be reported, got {other:?}"),
    }
    assert!(!call.slot.is_ready());
    call.finish().await;
}

// ---- DAVE transitions mid-stream -------------------------------------------------------------

#[tokio::test]
async fn dave_transitions_mid_stream_cause_no_decrypt_failure() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::AesDave, &ctx, true);
    call.expect_ready().await;
    call.wait_dave(|s| s.media_keys_live).await;
    call.wait_more_packets(50).await;
    let g = call.guild;
    let epoch = call.fake.dave_status(g).unwrap().epoch;

    let listener = call.fake.dave_add_listener(g).unwrap();
    call.wait_dave(|s| s.epoch > epoch && s.pending_transitions.is_empty() && s.media_keys_live)
        .await;
    call.wait_more_packets(50).await;

    let epoch = call.fake.dave_status(g).unwrap().epoch;
    call.fake.dave_remove_listener(g, listener).unwrap();
    call.wait_dave(|s| s.epoch > epoch && s.pending_transitions.is_empty() && s.media_keys_live)
        .await;
    call.wait_more_packets(50).await;

    call.fake.dave_reset_epoch(g).unwrap();
    call.wait_dave(|s| s.epoch >= 1 && s.pending_transitions.is_empty() && s.media_keys_live)
        .await;
    call.wait_more_packets(50).await;

    let r = call.fake.stream_report(g).unwrap();
    assert_clean(&r);
    assert_eq!(r.plain_frames_while_dave, 0);
    assert_eq!(r.plain_frames, 0);
    assert!(r.dave_frames >= 200);
    call.finish().await;
}

#[tokio::test]
async fn dave_downgrade_and_upgrade_switch_between_plain_and_encrypted() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::AesDave, &ctx, true);
    call.expect_ready().await;
    call.wait_dave(|s| s.media_keys_live).await;
    call.wait_more_packets(30).await;
    let g = call.guild;
    call.fake.dave_downgrade(g).unwrap();
    call.wait_dave(|s| s.protocol_version == 0 && s.pending_transitions.is_empty())
        .await;
    call.wait_more_packets(50).await;
    let plain = call.fake.stream_report(g).unwrap().plain_frames;
    assert!(plain >= 40, "plain frames after the downgrade: {plain}");
    call.fake.dave_reset_epoch(g).unwrap();
    call.wait_dave(|s| s.protocol_version == 1 && s.media_keys_live)
        .await;
    let dave_before = call.fake.stream_report(g).unwrap().dave_frames;
    call.wait_more_packets(50).await;
    let r = call.fake.stream_report(g).unwrap().without_media();
    assert!(r.dave_frames >= dave_before + 40, "{dave_before} -> {r:#?}");
    assert_clean(&r);
    // The server counts the upgrade as live when it sends op 22; frames we sent before op 22
    // reached us are plain. Real receivers accept plain frames for a while after an upgrade
    // (passthrough with a transition expiry), so only a short run of them is expected.
    assert!(
        r.plain_frames_while_dave <= 10,
        "{}",
        r.plain_frames_while_dave
    );
    call.finish().await;
}

#[tokio::test]
async fn invalid_commit_is_answered_with_op_31_and_recovers() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::AesDave, &ctx, true);
    call.expect_ready().await;
    call.wait_dave(|s| s.media_keys_live).await;
    let g = call.guild;
    let key_packages = || {
        call.count_events(
            |k| matches!(k, EventKind::DaveReceived { guild_id, op: 26, .. } if *guild_id == g),
        )
    };
    let before = key_packages();
    call.fake.dave_invalid_commit(g).unwrap();
    assert!(
        call.fake
            .wait_event(Duration::from_secs(5), |e| matches!(
                &e.kind,
                EventKind::DaveReceived { guild_id, op: 31, .. } if *guild_id == g
            ))
            .await
            .is_some()
    );
    assert!(
        call.fake
            .wait_until(Duration::from_secs(5), |_| key_packages() > before)
            .await,
        "a new key package follows op 31"
    );
    call.wait_dave(|s| s.media_keys_live && s.pending_transitions.is_empty())
        .await;
    call.wait_more_packets(50).await;
    let r = call.fake.stream_report(g).unwrap();
    assert_clean(&r);
    assert_eq!(r.plain_frames_while_dave, 0);
    call.finish().await;
}

#[tokio::test]
async fn sole_member_reset_keeps_the_stream_going() {
    let ctx = context(VoiceSettings::default());
    let mut call = Call::start(Server::AesDave, &ctx, true);
    call.expect_ready().await;
    call.wait_dave(|s| s.media_keys_live).await;
    call.wait_more_packets(30).await;
    let g = call.guild;
    call.fake.dave_sole_member(g).unwrap();
    call.wait_dave(|s| s.listeners.is_empty()).await;
    // Alone in the call: the player keeps being served (its position moves on).
    let served = call.slot.frame_counts();
    sleep(Duration::from_millis(1600)).await;
    let later = call.slot.frame_counts();
    assert!(
        later.sent + later.missed >= served.sent + served.missed + 25,
        "{served:?} -> {later:?}"
    );
    // Someone joins again: encrypted audio resumes and decrypts.
    call.fake.dave_add_listener(g).unwrap();
    call.wait_dave(|s| s.media_keys_live && s.pending_transitions.is_empty())
        .await;
    let dave_before = call.fake.stream_report(g).unwrap().dave_frames;
    call.wait_more_packets(50).await;
    let r = call.fake.stream_report(g).unwrap();
    assert!(r.dave_frames >= dave_before + 40);
    assert_eq!(r.transport_decrypt_failures, 0);
    assert_eq!(r.dave_decrypt_failures, 0);
    assert_eq!(r.plain_frames_while_dave, 0);
    assert_eq!(r.seq_gaps, 0);
    call.finish().await;
}

// ---- the handshake gate ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_all_connect_through_the_gate() {
    const N: usize = 200;
    let ctx = context(VoiceSettings::default());
    let fake = fake(Server::Load);
    fake.reset_stats();
    let mut calls = Vec::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = std::time::Instant::now();
    for _ in 0..N {
        let guild = next_guild();
        let slot = VoiceSlot::new();
        let conn = VoiceConnection::connect(&ctx, info_for(fake, guild), slot.clone(), tx.clone());
        calls.push((guild, slot, conn));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "connect() returns at once"
    );
    let mut ready = 0;
    while ready < N {
        match timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some(VoiceEvent::Ready)) => ready += 1,
            other => panic!("after {ready} ready: {other:?}"),
        }
    }
    for (guild, slot, conn) in &calls {
        assert!(conn.is_connected() && slot.is_ready(), "guild {guild}");
        assert!(fake.is_connected(*guild));
    }
    let m = ctx.metrics();
    assert_eq!(m.connections.ready, N as u64);
    assert_eq!(m.handshakes_in_flight, 0);
    let counters = fake.counters();
    assert!(
        counters.max_concurrent_handshakes <= 32,
        "{} handshakes at once",
        counters.max_concurrent_handshakes
    );
    for (_, _, conn) in calls {
        conn.disconnect().await;
    }
    assert_eq!(ctx.metrics().connections.ready, 0);
}

// ---- bad input -----------------------------------------------------------------------------

#[tokio::test]
async fn a_malformed_endpoint_is_reported_at_once() {
    let ctx = context(VoiceSettings::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let info = VoiceServerInfo {
        guild_id: next_guild(),
        user_id: BOT_USER,
        channel_id: 1,
        session_id: "s".into(),
        token: "t".into(),
        endpoint: "bad host name:443".into(),
    };
    let conn = VoiceConnection::connect(&ctx, info, VoiceSlot::new(), tx);
    match timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(VoiceEvent::Closed {
            code: 1006,
            by_remote: false,
            reason,
        })) => {
            assert!(reason.contains("endpoint"), "{reason}");
        }
        other => panic!("expected an immediate close, got {other:?}"),
    }
    assert!(!conn.is_connected());
}

#[tokio::test]
async fn an_unreachable_server_is_retried_then_reported() {
    let ctx = context(VoiceSettings::default());
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let info = VoiceServerInfo {
        guild_id: next_guild(),
        user_id: BOT_USER,
        channel_id: 1,
        session_id: "s".into(),
        token: "t".into(),
        endpoint: format!("127.0.0.1:{port}"),
    };
    let _conn = VoiceConnection::connect(&ctx, info, VoiceSlot::new(), tx);
    match timeout(Duration::from_secs(15), rx.recv()).await {
        Ok(Some(VoiceEvent::Closed {
            code: 1006,
            by_remote: false,
            ..
        })) => {}
        other => panic!("expected a close after the retries, got {other:?}"),
    }
    assert_eq!(
        ctx.metrics().close_codes,
        vec![(1006, 4)],
        "first try and three retries"
    );
}
