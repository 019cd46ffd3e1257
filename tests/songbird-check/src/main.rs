//! songbird-check: validates the fake Discord voice server against songbird 0.6's driver, an
//! independent sender that works against real Discord. It starts the `fake-discord` binary
//! (path in `FAKE_DISCORD_BIN`) as a child process, drives it over its JSON-lines control
//! protocol, connects songbird with the credentials the server issued, plays a 440 Hz sine
//! and checks the server's report: ~50 packets/s, no sequence gaps, every packet decrypts
//! (transport and DAVE), and the decoded audio has the signal's frequency and level.
//!
//! songbird speaks gateway v4 only, so the cases cover v4 (the v8 additions — `seq`, `seq_ack`,
//! buffered resume, sequenced binary frames — are covered by fake-discord's own tests).
//! Exit status 0 when every case passed; a summary line `N passed, M failed` ends the output.

use std::io::Cursor;
use std::num::NonZeroU64;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use songbird::Config;
use songbird::ConnectionInfo;
use songbird::driver::{CryptoMode, Driver};
use songbird::id::{ChannelId, GuildId, UserId};
use songbird::input::{Input, RawAdapter};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::sleep;

const USER_ID: u64 = 424_242_424_242_424_242;
const CHANNEL_ID: u64 = 777_777_777_777_777_777;
const FREQ: f64 = 440.0;
const AMPLITUDE: f64 = 0.5;

/// The fake server as a child process.
struct Fake {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

impl Fake {
    async fn start(bin: &str, ca_file: &str) -> Result<Fake, String> {
        let mut child = Command::new(bin)
            .args(["--ca-file", ca_file])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {bin}: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("fake-discord exited before it was ready")?;
        let ready: Value = serde_json::from_str(&first).map_err(|e| e.to_string())?;
        if ready["event"] != "ready" {
            return Err(format!("unexpected first line {first}"));
        }
        Ok(Fake {
            _child: child,
            stdin,
            lines,
            next_id: 0,
        })
    }

    async fn cmd(&mut self, mut req: Value) -> Result<Value, String> {
        self.next_id += 1;
        req["id"] = json!(self.next_id);
        self.stdin
            .write_all(format!("{req}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let line = self
            .lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("fake-discord closed its output")?;
        let reply: Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        if reply["ok"] == true {
            Ok(reply["result"].clone())
        } else {
            Err(format!("{} failed: {}", req["cmd"], reply["error"]))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Script {
    /// Just play.
    Plain,
    /// A second listener joins, then the first leaves, while playing (two new epochs).
    ListenerJoinLeave,
    /// op 24 epoch 1 while playing: the group is rebuilt.
    EpochReset,
    /// op 21 protocol 0 while playing: DAVE → transport only.
    Downgrade,
    /// Close 4015 while playing: songbird resumes (op 7 → op 9).
    Resume4015,
    /// TCP drop without close frame while playing: songbird resumes.
    ResumeDrop,
    /// Close 4014: songbird must not come back.
    Kick4014,
}

struct Case {
    name: &'static str,
    prefer: CryptoMode,
    offered: &'static [&'static str],
    expect_mode: &'static str,
    dave: bool,
    join: &'static str,
    script: Script,
}

const AES: &str = "aead_aes256_gcm_rtpsize";
const XCHACHA: &str = "aead_xchacha20_poly1305_rtpsize";

fn cases() -> Vec<Case> {
    let c = |name, prefer, offered, expect_mode, dave, join, script| Case {
        name,
        prefer,
        offered,
        expect_mode,
        dave,
        join,
        script,
    };
    use CryptoMode::{Aes256Gcm as A, XChaCha20Poly1305 as X};
    vec![
        c(
            "aes, no DAVE",
            A,
            &[AES, XCHACHA],
            AES,
            false,
            "welcome_bot",
            Script::Plain,
        ),
        c(
            "xchacha, no DAVE",
            X,
            &[AES, XCHACHA],
            XCHACHA,
            false,
            "welcome_bot",
            Script::Plain,
        ),
        c(
            "only xchacha offered",
            A,
            &[XCHACHA],
            XCHACHA,
            false,
            "welcome_bot",
            Script::Plain,
        ),
        c(
            "aes, DAVE (bot welcomed)",
            A,
            &[AES, XCHACHA],
            AES,
            true,
            "welcome_bot",
            Script::Plain,
        ),
        c(
            "xchacha, DAVE (bot welcomed)",
            X,
            &[AES, XCHACHA],
            XCHACHA,
            true,
            "welcome_bot",
            Script::Plain,
        ),
        c(
            "aes, DAVE (bot commits)",
            A,
            &[AES, XCHACHA],
            AES,
            true,
            "bot_commits",
            Script::Plain,
        ),
        c(
            "xchacha, DAVE (bot commits)",
            X,
            &[AES, XCHACHA],
            XCHACHA,
            true,
            "bot_commits",
            Script::Plain,
        ),
        c(
            "DAVE listener joins and leaves",
            A,
            &[AES, XCHACHA],
            AES,
            true,
            "welcome_bot",
            Script::ListenerJoinLeave,
        ),
        c(
            "DAVE epoch reset",
            X,
            &[AES, XCHACHA],
            XCHACHA,
            true,
            "welcome_bot",
            Script::EpochReset,
        ),
        c(
            "DAVE downgrade to transport only",
            A,
            &[AES, XCHACHA],
            AES,
            true,
            "welcome_bot",
            Script::Downgrade,
        ),
        c(
            "resume after 4015",
            A,
            &[AES, XCHACHA],
            AES,
            true,
            "welcome_bot",
            Script::Resume4015,
        ),
        c(
            "resume after TCP drop",
            X,
            &[AES, XCHACHA],
            XCHACHA,
            false,
            "welcome_bot",
            Script::ResumeDrop,
        ),
        c(
            "4014 is final",
            A,
            &[AES, XCHACHA],
            AES,
            false,
            "welcome_bot",
            Script::Kick4014,
        ),
    ]
}

/// Interleaved stereo f32 little-endian bytes of a sine.
fn sine_bytes(seconds: f64) -> Vec<u8> {
    let n = (seconds * 48_000.0) as usize;
    let mut out = Vec::with_capacity(n * 8);
    for i in 0..n {
        let v =
            (AMPLITUDE * (2.0 * std::f64::consts::PI * FREQ * i as f64 / 48_000.0).sin()) as f32;
        out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn events_for(events: &Value, guild: u64, kind: &str) -> Vec<Value> {
    events
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["kind"] == kind && e["guild_id"] == json!(guild))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

async fn run_case(fake: &mut Fake, guild: u64, case: &Case) -> Result<String, Vec<String>> {
    let mut problems = Vec::new();
    let fail = |p: &mut Vec<String>, msg: String| p.push(msg);
    fake.cmd(json!({"cmd": "set_behaviour", "behaviour": {
        "modes": case.offered, "dave": case.dave, "dave_join": case.join, "dave_listeners": 1,
    }}))
    .await
    .map_err(|e| vec![e])?;
    let creds = fake
        .cmd(json!({"cmd": "register_session", "guild_id": guild, "user_id": USER_ID, "channel_id": CHANNEL_ID}))
        .await
        .map_err(|e| vec![e])?;
    let mut driver = Driver::new(Config::default().crypto_mode(case.prefer));
    let info = ConnectionInfo {
        channel_id: ChannelId(NonZeroU64::new(CHANNEL_ID).expect("non-zero")),
        endpoint: creds["endpoint"].as_str().unwrap_or_default().to_string(),
        guild_id: GuildId(NonZeroU64::new(guild).expect("non-zero")),
        session_id: creds["session_id"].as_str().unwrap_or_default().to_string(),
        token: creds["token"].as_str().unwrap_or_default().to_string(),
        user_id: UserId(NonZeroU64::new(USER_ID).expect("non-zero")),
    };
    if let Err(e) = driver.connect(info).await {
        return Err(vec![format!("songbird could not connect: {e:?}")]);
    }
    let wait = |cmd: &str, timeout_ms: u64| json!({"cmd": cmd, "guild_id": guild, "timeout_ms": timeout_ms});
    if fake.cmd(wait("wait_connected", 10_000)).await != Ok(json!(true)) {
        return Err(vec!["songbird did not complete the handshake".into()]);
    }
    if case.dave && fake.cmd(wait("wait_dave_ready", 10_000)).await != Ok(json!(true)) {
        let status = fake
            .cmd(json!({"cmd": "dave_status", "guild_id": guild}))
            .await;
        return Err(vec![format!("DAVE group not ready: {status:?}")]);
    }

    let play_s = if case.script == Script::Plain {
        4.0
    } else {
        6.0
    };
    let track = driver.play_input(Input::from(RawAdapter::new(
        Cursor::new(sine_bytes(play_s)),
        48_000,
        2,
    )));
    if case.script != Script::Plain {
        sleep(Duration::from_millis(1500)).await;
    }
    let dave_cmd = |cmd: &str| json!({"cmd": cmd, "guild_id": guild});
    match case.script {
        Script::Plain => {}
        Script::ListenerJoinLeave => {
            let first = fake
                .cmd(dave_cmd("dave_status"))
                .await
                .map_err(|e| vec![e])?["listeners"][0]
                .clone();
            fake.cmd(dave_cmd("dave_add_listener"))
                .await
                .map_err(|e| vec![e])?;
            sleep(Duration::from_millis(1500)).await;
            fake.cmd(json!({"cmd": "dave_remove_listener", "guild_id": guild, "user_id": first}))
                .await
                .map_err(|e| vec![e])?;
        }
        Script::EpochReset => {
            fake.cmd(dave_cmd("dave_reset_epoch"))
                .await
                .map_err(|e| vec![e])?;
        }
        Script::Downgrade => {
            fake.cmd(dave_cmd("dave_downgrade"))
                .await
                .map_err(|e| vec![e])?;
        }
        Script::Resume4015 => {
            fake.cmd(json!({"cmd": "close", "guild_id": guild, "code": 4015, "reason": ""}))
                .await
                .map_err(|e| vec![e])?;
        }
        Script::ResumeDrop => {
            fake.cmd(dave_cmd("drop")).await.map_err(|e| vec![e])?;
        }
        Script::Kick4014 => {
            fake.cmd(json!({"cmd": "close", "guild_id": guild, "code": 4014, "reason": "kicked"}))
                .await
                .map_err(|e| vec![e])?;
        }
    }
    // Let the track finish and the trailing silence frames arrive.
    let elapsed = if case.script == Script::Plain {
        0.0
    } else {
        1.5
    };
    sleep(Duration::from_secs_f64(play_s - elapsed + 1.0)).await;

    if case.script != Script::Kick4014
        && let Ok(Ok(state)) = tokio::time::timeout(Duration::from_secs(2), track.get_info()).await
        && !matches!(
            state.playing,
            songbird::tracks::PlayMode::End | songbird::tracks::PlayMode::Stop
        )
    {
        problems.push(format!("track did not end: {:?}", state.playing));
    }
    let report = fake
        .cmd(json!({"cmd": "report", "guild_id": guild, "window_s": 0.5}))
        .await
        .map_err(|e| vec![e])?;
    let events = fake
        .cmd(json!({"cmd": "events"}))
        .await
        .map_err(|e| vec![e])?;
    driver.leave();

    let n = |k: &str| report[k].as_u64().unwrap_or(u64::MAX);
    let packets = n("packets");
    if case.script == Script::Kick4014 {
        // songbird gives up the connection: only the gateway side is checked.
        let identifies = events_for(&events, guild, "identified").len();
        let resumes = events_for(&events, guild, "resumed").len();
        if identifies != 1 || resumes != 0 {
            fail(
                &mut problems,
                format!("after 4014: {identifies} identifies, {resumes} resumes (want 1, 0)"),
            );
        }
        let closed = events_for(&events, guild, "closed");
        if !closed
            .iter()
            .any(|c| c["code"] == 4014 && c["by"] == "server")
        {
            fail(&mut problems, format!("no 4014 close recorded: {closed:?}"));
        }
        let summary = format!("closed 4014, {packets} packets before, no reconnect");
        return if problems.is_empty() {
            Ok(summary)
        } else {
            Err(problems)
        };
    }
    let pps = report["packets_per_second"].as_f64().unwrap_or(0.0);
    let min_packets = ((play_s - 0.5) * 50.0) as u64;
    if packets < min_packets {
        fail(
            &mut problems,
            format!("only {packets} packets (want >= {min_packets})"),
        );
    }
    if !(47.0..=53.0).contains(&pps) {
        fail(&mut problems, format!("{pps:.2} packets/s"));
    }
    for key in [
        "lost_packets",
        "duplicates",
        "reordered",
        "transport_decrypt_failures",
        "dave_decrypt_failures",
        "dave_frames_without_member",
        "opus_decode_errors",
        "bad_headers",
        "packets_from_other_address",
        "nonce_discontinuities",
    ] {
        if n(key) != 0 {
            fail(&mut problems, format!("{key} = {}", report[key]));
        }
    }
    // While an epoch reset rebuilds the group, songbird sends plain frames until its own new
    // keys are in place, which may be after the fake server's are: the reset case counts them
    // below instead.
    if case.script != Script::EpochReset && n("plain_frames_while_dave") != 0 {
        fail(
            &mut problems,
            format!(
                "plain_frames_while_dave = {}",
                report["plain_frames_while_dave"]
            ),
        );
    }
    // songbird's mixer thread sends the first packet while its gateway task is still about to
    // send Speaking, so on a busy machine the first packet or two can arrive more than the fake
    // server's 50 ms grace before it. More than that means Speaking was missing or late.
    if n("packets_before_speaking") > 2 {
        fail(
            &mut problems,
            format!(
                "packets_before_speaking = {} (songbird may lead by 2 at most)",
                report["packets_before_speaking"]
            ),
        );
    }
    if report["mode"] != case.expect_mode {
        fail(
            &mut problems,
            format!("mode {} (want {})", report["mode"], case.expect_mode),
        );
    }
    let audio_frames = packets.saturating_sub(n("silence_frames"));
    match case.script {
        _ if !case.dave => {
            if n("dave_frames") != 0 {
                fail(
                    &mut problems,
                    format!("{} DAVE frames without DAVE", n("dave_frames")),
                );
            }
        }
        Script::Downgrade => {
            if n("dave_frames") < 25 || n("plain_frames") < 100 {
                fail(
                    &mut problems,
                    format!(
                        "downgrade: {} DAVE then {} plain frames",
                        n("dave_frames"),
                        n("plain_frames")
                    ),
                );
            }
            if report["dave_protocol_version"] != 0 {
                fail(
                    &mut problems,
                    format!(
                        "protocol version after downgrade {}",
                        report["dave_protocol_version"]
                    ),
                );
            }
        }
        Script::EpochReset => {
            // songbird sends plain frames while its group is rebuilt; all else is DAVE.
            if n("dave_frames") + n("plain_frames") != audio_frames
                || n("dave_frames") < audio_frames - 50
            {
                fail(
                    &mut problems,
                    format!(
                        "epoch reset: {} DAVE, {} plain of {audio_frames}",
                        n("dave_frames"),
                        n("plain_frames")
                    ),
                );
            }
        }
        _ => {
            if n("dave_frames") != audio_frames || n("plain_frames") != 0 {
                fail(
                    &mut problems,
                    format!(
                        "{} DAVE + {} plain of {audio_frames} audio frames",
                        n("dave_frames"),
                        n("plain_frames")
                    ),
                );
            }
        }
    }
    if n("silence_frames") < 5 {
        fail(
            &mut problems,
            format!(
                "{} silence frames after the track (want 5)",
                n("silence_frames")
            ),
        );
    }
    let speaking = report["speaking"].as_array().cloned().unwrap_or_default();
    if speaking
        .first()
        .map(|s| s["speaking"].as_u64().unwrap_or(0) & 1)
        != Some(1)
    {
        fail(
            &mut problems,
            format!("first Speaking is not microphone: {speaking:?}"),
        );
    }

    // The tone: every full window inside the track has the frequency and level of the input.
    let windows = report["analysis"].as_array().cloned().unwrap_or_default();
    let audible: Vec<&Value> = windows
        .iter()
        .filter(|w| w["rms_dbfs"].as_f64().unwrap_or(-200.0) > -30.0)
        .collect();
    let inner = if audible.len() > 2 {
        &audible[1..audible.len() - 1]
    } else {
        &audible[..]
    };
    if (inner.len() as f64) < (play_s - 1.5) * 2.0 {
        fail(
            &mut problems,
            format!("only {} audible windows", audible.len()),
        );
    }
    let want_db = 20.0 * (AMPLITUDE / 2f64.sqrt()).log10();
    let (mut fmin, mut fmax, mut lmin, mut lmax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for w in inner {
        let f = w["frequency_hz"].as_f64().unwrap_or(0.0);
        let l = w["rms_dbfs"].as_f64().unwrap_or(-200.0);
        (fmin, fmax, lmin, lmax) = (fmin.min(f), fmax.max(f), lmin.min(l), lmax.max(l));
        if (f - FREQ).abs() > 2.0 || (l - want_db).abs() > 1.0 {
            fail(
                &mut problems,
                format!(
                    "window at {}s: {f:.1} Hz, {l:.2} dBFS (want {FREQ} Hz, {want_db:.2} dBFS ±1 dB)",
                    w["start_s"]
                ),
            );
        }
    }

    // Gateway behaviour seen from the server.
    let connected: Vec<Value> = events
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["kind"] == "connected")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if connected.iter().any(|e| e["version"] != 4) {
        fail(
            &mut problems,
            "songbird connected with a version other than 4".into(),
        );
    }
    let identifies = events_for(&events, guild, "identified").len();
    let resumes = events_for(&events, guild, "resumed");
    match case.script {
        Script::Resume4015 | Script::ResumeDrop => {
            if identifies != 1 || resumes.len() != 1 {
                fail(
                    &mut problems,
                    format!(
                        "{identifies} identifies, {} resumes (want 1 and 1)",
                        resumes.len()
                    ),
                );
            }
        }
        _ => {
            if identifies != 1 || !resumes.is_empty() {
                fail(
                    &mut problems,
                    format!("{identifies} identifies, {} resumes", resumes.len()),
                );
            }
        }
    }
    // songbird sends a UDP keepalive every 5 s from connecting on; the cases that keep one
    // connection for over 6 s must show at least one, recognised by the fake server.
    if matches!(
        case.script,
        Script::ListenerJoinLeave | Script::EpochReset | Script::Downgrade
    ) && n("keepalives") == 0
    {
        fail(&mut problems, "no UDP keepalive recognised".to_string());
    }
    let dave_errors = events_for(&events, guild, "dave_error");
    if !dave_errors.is_empty() {
        fail(&mut problems, format!("DAVE errors: {dave_errors:?}"));
    }

    let summary = format!(
        "{packets} pkts, {pps:.2}/s, gap p50/p99/max {}/{}/{} ms, lost {}, dave {} plain {} silence {}, tone {fmin:.1}-{fmax:.1} Hz {lmin:.2}..{lmax:.2} dBFS, ts jumps {}, keepalives {}",
        ms(&report["gap_p50"]),
        ms(&report["gap_p99"]),
        ms(&report["gap_max"]),
        n("lost_packets"),
        n("dave_frames"),
        n("plain_frames"),
        n("silence_frames"),
        n("timestamp_jumps"),
        n("keepalives"),
    );
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(problems.into_iter().chain([summary]).collect())
    }
}

fn ms(d: &Value) -> String {
    let secs = d["secs"].as_f64().unwrap_or(f64::NAN);
    let nanos = d["nanos"].as_f64().unwrap_or(0.0);
    format!("{:.1}", secs * 1000.0 + nanos / 1e6)
}

fn main() {
    let bin = std::env::var("FAKE_DISCORD_BIN").unwrap_or_else(|_| {
        eprintln!("songbird-check: set FAKE_DISCORD_BIN to the fake-discord binary");
        std::process::exit(2);
    });
    let dir = std::env::temp_dir().join(format!("songbird-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_file = dir.join("ca.pem");
    // songbird (tokio-websockets with the native root store) reads SSL_CERT_FILE when it
    // connects; set it before any thread exists.
    // SAFETY: single-threaded at this point; no other code reads the environment concurrently.
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca_file) };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let only = std::env::args().nth(1);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let code = rt.block_on(async move {
        let mut fake = match Fake::start(&bin, ca_file.to_str().expect("utf-8 path")).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("songbird-check: {e}");
                return 1;
            }
        };
        let (mut passed, mut failed) = (0, 0);
        for (i, case) in cases().iter().enumerate() {
            if only.as_deref().is_some_and(|o| !case.name.contains(o)) {
                continue;
            }
            let guild = 1000 + i as u64;
            match run_case(&mut fake, guild, case).await {
                Ok(summary) => {
                    passed += 1;
                    println!("PASS {}: {summary}", case.name);
                }
                Err(problems) => {
                    failed += 1;
                    println!("FAIL {}:", case.name);
                    for p in problems {
                        println!("    {p}");
                    }
                }
            }
        }
        let _ = fake.cmd(json!({"cmd": "shutdown"})).await;
        println!("{passed} passed, {failed} failed");
        if failed == 0 { 0 } else { 1 }
    });
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(code);
}
