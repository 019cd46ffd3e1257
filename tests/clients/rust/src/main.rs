//! lavalink-rs-check: drives Acoustic with lavalink-rs (the Rust Lavalink client) exactly as a
//! bot would, and checks what reaches the fake Discord voice server.
//!
//! It starts the fake Discord server (`FAKE_DISCORD_BIN`), a small HTTP server over the test
//! media (`ACOUSTIC_MEDIA_DIR`) and one Acoustic node (`ACOUSTIC_BIN`), then, with lavalink-rs's
//! own `LavalinkClient`, `NodeBuilder`, event hooks and `PlayerContext`: connects and receives
//! `ready`; reads version, info and stats; loads an http track, an M3U playlist and a file that
//! is no audio; decodes tracks; joins voice by feeding the bot's VOICE_STATE_UPDATE and
//! VOICE_SERVER_UPDATE (credentials issued by the fake server) to the client; plays from the
//! library's queue and checks in the decoded audio (the staircase: second k is a 200 + 100·k Hz
//! tone) the seek, the timescale pitch, the filter reset, pause/resume, the player volume, the
//! library's auto-advance to the next queued track, the volume filter and stop; resumes a
//! session after the bot process is killed; destroys the player.
//!
//! The stages run in order (each builds on the last) and stop at the first failure. Exit
//! status 0 when all passed. `ACOUSTIC_TEST_LOG=1` echoes the node's log.

mod audio;
mod fake;
mod media;
mod node;
mod proxy;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lavalink_rs::hook;
use lavalink_rs::model::events::{
    Events, Ready, TrackEnd, TrackEndReason, TrackException, TrackStart, TrackStuck,
    WebSocketClosed,
};
use lavalink_rs::model::http::{ResumingState, UpdatePlayer, UpdatePlayerTrack};
use lavalink_rs::model::player::{ConnectionInfo, Filters, Timescale};
use lavalink_rs::model::track::{TrackData, TrackLoadData, TrackLoadType};
use lavalink_rs::prelude::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

use audio::{at_packet, describe, level, runs, steps};
use fake::{Creds, Fake};

pub type Res<T> = Result<T, String>;

pub const PASSWORD: &str = "youshallnotpass";
const BOT_ID: u64 = 123_456_789_012_345_678;
const GUILD: u64 = 201;
const CHANNEL: u64 = 1_000_201;
const RESUME_GUILD: u64 = 202;
const RESUME_CHANNEL: u64 = 1_000_202;
const RECONNECT_GUILD: u64 = 203;
const RECONNECT_CHANNEL: u64 = 1_000_203;
const T: Duration = Duration::from_secs(15);

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        let ok: bool = $cond;
        if !ok {
            return Err(format!($($arg)+));
        }
    };
}

fn lerr(what: &str) -> impl FnOnce(lavalink_rs::error::LavalinkError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

// ---------------------------------------------------------------------------------------------
// Events: lavalink-rs calls plain `fn` hooks; they append to a log kept in the client's data.

#[derive(Clone, Debug)]
enum Ev {
    Ready(Ready),
    Start(TrackStart),
    End(TrackEnd),
    Exception(TrackException),
    Stuck(TrackStuck),
    Closed(WebSocketClosed),
}

#[derive(Default)]
struct Log {
    evs: std::sync::Mutex<Vec<Ev>>,
    notify: Notify,
}

impl Log {
    fn push(&self, e: Ev) {
        self.evs.lock().unwrap().push(e);
        self.notify.notify_waiters();
    }

    fn len(&self) -> usize {
        self.evs.lock().unwrap().len()
    }

    fn all(&self) -> Vec<Ev> {
        self.evs.lock().unwrap().clone()
    }

    /// The first event from index `from` on for which `pick` returns Some.
    async fn wait<R>(&self, from: usize, what: &str, pick: impl Fn(&Ev) -> Option<R>) -> Res<R> {
        let deadline = Instant::now() + T;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.evs.lock().unwrap().iter().skip(from).find_map(&pick) {
                return Ok(r);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, notified).await.is_err() {
                return Err(format!(
                    "timed out after {T:?} waiting for {what}; events: {:?}",
                    self.all().iter().skip(from).map(brief).collect::<Vec<_>>()
                ));
            }
        }
    }
}

fn brief(e: &Ev) -> String {
    match e {
        Ev::Ready(r) => format!("ready(resumed={})", r.resumed),
        Ev::Start(s) => format!("start({} {:?})", s.guild_id.0, s.track.info.uri),
        Ev::End(s) => format!("end({} {:?})", s.guild_id.0, s.reason),
        Ev::Exception(s) => format!("exception({} {:?})", s.guild_id.0, s.exception),
        Ev::Stuck(s) => format!("stuck({})", s.guild_id.0),
        Ev::Closed(s) => format!("closed({} {} {})", s.guild_id.0, s.code, s.reason),
    }
}

fn record(client: &LavalinkClient, e: Ev) {
    if let Ok(log) = client.data::<Log>() {
        log.push(e);
    }
}

#[hook]
async fn on_ready(client: LavalinkClient, _session_id: String, e: &Ready) {
    record(&client, Ev::Ready(e.clone()));
}

#[hook]
async fn on_track_start(client: LavalinkClient, _session_id: String, e: &TrackStart) {
    record(&client, Ev::Start(e.clone()));
}

#[hook]
async fn on_track_end(client: LavalinkClient, _session_id: String, e: &TrackEnd) {
    record(&client, Ev::End(e.clone()));
}

#[hook]
async fn on_track_exception(client: LavalinkClient, _session_id: String, e: &TrackException) {
    record(&client, Ev::Exception(e.clone()));
}

#[hook]
async fn on_track_stuck(client: LavalinkClient, _session_id: String, e: &TrackStuck) {
    record(&client, Ev::Stuck(e.clone()));
}

#[hook]
async fn on_ws_closed(client: LavalinkClient, _session_id: String, e: &WebSocketClosed) {
    record(&client, Ev::Closed(e.clone()));
}

// ---------------------------------------------------------------------------------------------
// The bot side, as a lavalink-rs bot writes it.

/// A `LavalinkClient` with one node at `addr`; `session_id` resumes that session.
async fn connect(addr: &str, session_id: Option<String>) -> (LavalinkClient, Arc<Log>) {
    let events = Events {
        ready: Some(on_ready),
        track_start: Some(on_track_start),
        track_end: Some(on_track_end),
        track_exception: Some(on_track_exception),
        track_stuck: Some(on_track_stuck),
        websocket_closed: Some(on_ws_closed),
        ..Default::default()
    };
    let node = NodeBuilder {
        hostname: addr.to_owned(),
        is_ssl: false,
        events: Events::default(),
        password: PASSWORD.to_owned(),
        user_id: UserId(BOT_ID),
        session_id,
    };
    let log = Arc::new(Log::default());
    let client = LavalinkClient::new_with_data(
        events,
        vec![node],
        NodeDistributionStrategy::sharded(),
        log.clone(),
    )
    .await;
    (client, log)
}

/// Joining a voice channel: the bot sends op 4 on its gateway, Discord answers with
/// VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE, and the bot's event handlers hand both to
/// lavalink-rs. Here `creds` stand for those two dispatches.
async fn join_voice(
    client: &LavalinkClient,
    guild: u64,
    channel: u64,
    creds: &Creds,
) -> Res<ConnectionInfo> {
    let (info, ()) = tokio::join!(
        client.get_connection_info(guild, Duration::from_secs(5)),
        async {
            client.handle_voice_state_update(
                guild,
                Some(channel),
                BOT_ID,
                creds.session_id.clone(),
            );
            client.handle_voice_server_update(
                guild,
                creds.token.clone(),
                Some(creds.endpoint.clone()),
            );
        }
    );
    info.map_err(lerr("get_connection_info"))
}

async fn load_one(client: &LavalinkClient, url: &str) -> Res<TrackData> {
    let res = client
        .load_tracks(GUILD, url)
        .await
        .map_err(lerr("load_tracks"))?;
    ensure!(
        res.load_type == TrackLoadType::Track,
        "loadType {:?} for {url}",
        res.load_type
    );
    match res.data {
        Some(TrackLoadData::Track(t)) => Ok(t),
        other => Err(format!("track load of {url} gave {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The test

struct Env {
    acoustic: String,
    fake: String,
    media: PathBuf,
    dir: PathBuf,
}

struct State {
    env: Env,
    fake: Fake,
    media: media::MediaServer,
    node: node::Node,
    client: Option<LavalinkClient>,
    log: Arc<Log>,
    player: Option<PlayerContext>,
    mp3: Option<TrackData>,
    playlist: Vec<TrackData>,
}

impl State {
    fn client(&self) -> &LavalinkClient {
        self.client.as_ref().expect("connected")
    }

    fn player(&self) -> &PlayerContext {
        self.player.as_ref().expect("player created")
    }

    async fn packets(&self, guild: u64) -> Res<u64> {
        self.fake.packets(guild).await
    }

    async fn wait_packets(&self, guild: u64, n: u64, what: &str) -> Res<u64> {
        let deadline = Instant::now() + T;
        loop {
            let p = self.packets(guild).await?;
            if p >= n {
                return Ok(p);
            }
            ensure!(
                Instant::now() < deadline,
                "timed out waiting for {n} packets ({what}) in guild {guild}; have {p}"
            );
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// The guild's current stream arrived whole: no packet lost, duplicated or reordered, every
    /// one decrypted (transport and DAVE) and decoded.
    async fn assert_clean_stream(&self, guild: u64) -> Res<()> {
        let reports = self.fake.reports(guild).await?;
        let r = reports
            .last()
            .ok_or(format!("no voice stream for guild {guild}"))?;
        for k in [
            "lost_packets",
            "duplicates",
            "reordered",
            "transport_decrypt_failures",
            "dave_decrypt_failures",
            "opus_decode_errors",
            "bad_headers",
            "plain_frames_while_dave",
        ] {
            ensure!(
                r[k].as_u64() == Some(0),
                "guild {guild}: {k} = {} (packets {}, gaps {})",
                r[k],
                r["packets"],
                r["seq_gap_list"]
            );
        }
        ensure!(
            r["packets"].as_u64().unwrap_or(0) > 0,
            "guild {guild}: no packets"
        );
        Ok(())
    }
}

async fn stage_connect(s: &mut State) -> Res<()> {
    let (client, log) = connect(&s.node.addr, None).await;
    let ready = log
        .wait(0, "ready", |e| match e {
            Ev::Ready(r) => Some(r.clone()),
            _ => None,
        })
        .await?;
    ensure!(!ready.resumed, "a new session says resumed");
    ensure!(!ready.session_id.is_empty(), "empty session id");
    let node = client.get_node_for_guild(GUILD).await;
    ensure!(
        **node.session_id.load() == ready.session_id,
        "the client did not take the session id from ready"
    );
    let version = client
        .request_version(GUILD)
        .await
        .map_err(lerr("version"))?;
    ensure!(version.starts_with("4."), "/version {version}");
    let info = client.request_info(GUILD).await.map_err(lerr("info"))?;
    ensure!(info.version.major == 4, "info.version {:?}", info.version);
    ensure!(
        info.filters.iter().any(|f| f == "timescale"),
        "filters {:?}",
        info.filters
    );
    ensure!(
        info.source_managers.iter().any(|f| f == "http"),
        "sourceManagers {:?}",
        info.source_managers
    );
    let stats = client.request_stats(GUILD).await.map_err(lerr("stats"))?;
    ensure!(
        stats.players == 0 && stats.playing_players == 0,
        "stats {stats:?}"
    );
    ensure!(
        (0.0..=1.0).contains(&stats.cpu.lavalink_load) && stats.cpu.cores >= 1,
        "cpu {:?}",
        stats.cpu
    );
    s.client = Some(client);
    s.log = log;
    Ok(())
}

async fn stage_load(s: &mut State) -> Res<()> {
    let client = s.client();
    let mp3_url = s.media.url("staircase/staircase.mp3");
    let mp3 = load_one(client, &mp3_url).await?;
    ensure!(
        mp3.info.title == "Acoustic Staircase",
        "title {:?}",
        mp3.info.title
    );
    ensure!(
        mp3.info.source_name == "http",
        "source {:?}",
        mp3.info.source_name
    );
    ensure!(
        mp3.info.length.abs_diff(10_000) < 100,
        "length {}",
        mp3.info.length
    );
    ensure!(
        mp3.info.is_seekable && !mp3.info.is_stream,
        "{:?}",
        mp3.info
    );
    ensure!(
        mp3.info.uri.as_deref() == Some(mp3_url.as_str()),
        "uri {:?}",
        mp3.info.uri
    );

    let pl = client
        .load_tracks(GUILD, &s.media.url("playlist.m3u"))
        .await
        .map_err(lerr("load playlist"))?;
    ensure!(
        pl.load_type == TrackLoadType::Playlist,
        "loadType {:?}",
        pl.load_type
    );
    let Some(TrackLoadData::Playlist(pl)) = pl.data else {
        return Err(format!("playlist data {:?}", pl.data));
    };
    ensure!(pl.tracks.len() == 3, "{} playlist entries", pl.tracks.len());
    let flac_url = s.media.url("staircase/staircase.flac");
    ensure!(
        pl.tracks[1].info.uri.as_deref() == Some(flac_url.as_str()),
        "entry 2 {:?}",
        pl.tracks[1].info.uri
    );
    ensure!(
        pl.info.selected_track.is_none(),
        "selectedTrack {:?}",
        pl.info.selected_track
    );

    // A file that is no audio: loadType "error", which lavalink-rs returns as an Err.
    match client
        .load_tracks(GUILD, &s.media.url("faults/not-audio.mp3"))
        .await
    {
        Err(lavalink_rs::error::LavalinkError::TrackError(e)) => {
            ensure!(!e.message.is_empty(), "empty error message {e:?}");
        }
        other => return Err(format!("not-audio.mp3 loaded as {other:?}")),
    }

    let one = client
        .decode_track(GUILD, &mp3.encoded)
        .await
        .map_err(lerr("decodetrack"))?;
    ensure!(one.info == mp3.info, "decoded {:?}", one.info);
    let encoded: Vec<String> = pl.tracks.iter().map(|t| t.encoded.clone()).collect();
    let many = client
        .decode_tracks(GUILD, &encoded)
        .await
        .map_err(lerr("decodetracks"))?;
    ensure!(
        many.iter()
            .map(|t| &t.info)
            .eq(pl.tracks.iter().map(|t| &t.info)),
        "decodetracks {many:?}"
    );
    s.mp3 = Some(mp3);
    s.playlist = pl.tracks;
    Ok(())
}

async fn stage_join(s: &mut State) -> Res<()> {
    let creds = s.fake.register(GUILD, BOT_ID, CHANNEL).await?;
    let client = s.client();
    let info = join_voice(client, GUILD, CHANNEL, &creds).await?;
    ensure!(
        info.token == creds.token && info.session_id == creds.session_id,
        "connection info {info:?}"
    );
    let player = client
        .create_player_context(GUILD, info)
        .await
        .map_err(lerr("create_player_context"))?;
    ensure!(
        s.fake.wait_connected(GUILD, 15_000).await?,
        "the node did not complete the voice handshake"
    );
    let remote = client
        .request_player(GUILD)
        .await
        .map_err(lerr("get player"))?;
    ensure!(
        remote.voice.session_id == creds.session_id && remote.voice.token == creds.token,
        "voice {:?}",
        remote.voice
    );
    ensure!(remote.track.is_none() && !remote.paused, "{remote:?}");
    s.player = Some(player);
    Ok(())
}

async fn stage_play(s: &mut State) -> Res<()> {
    let player = s.player();
    let mut mp3 = s.mp3.clone().expect("loaded");
    mp3.user_data = Some(json!({ "requester": 42 }));
    let flac = s.playlist[1].clone();
    let from = s.log.len();
    // The library's queue: two tracks, then skip() starts the first.
    player.queue(mp3.clone()).map_err(lerr("queue"))?;
    player.queue(flac.clone()).map_err(lerr("queue"))?;
    player.skip().map_err(lerr("skip"))?;
    let start = s
        .log
        .wait(from, "TrackStart of the mp3", |e| match e {
            Ev::Start(t) if t.guild_id.0 == GUILD => Some(t.clone()),
            _ => None,
        })
        .await?;
    ensure!(
        start.track.info.uri == mp3.info.uri,
        "started {:?}",
        start.track.info
    );
    ensure!(
        start.track.user_data == mp3.user_data,
        "userData {:?}",
        start.track.user_data
    );
    let queued = player
        .get_queue()
        .get_count()
        .await
        .map_err(lerr("queue"))?;
    ensure!(queued == 1, "{queued} tracks left in the queue");

    s.wait_packets(GUILD, 120, "2.4 s played").await?;
    let seek_at = s.packets(GUILD).await?;
    let p = player
        .set_position(Duration::from_millis(4000))
        .await
        .map_err(lerr("seek"))?;
    ensure!(p.track.is_some(), "no track after the seek");
    s.wait_packets(GUILD, seek_at + 50, "1 s after the seek")
        .await?;
    let pitch_at = s.packets(GUILD).await?;
    let p = player
        .set_filters(Filters {
            timescale: Some(Timescale {
                pitch: Some(1.5),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map_err(lerr("timescale"))?;
    let pitch = p.filters.and_then(|f| f.timescale).and_then(|t| t.pitch);
    ensure!(
        pitch == Some(1.5),
        "filters after the PATCH: pitch {pitch:?}"
    );
    s.wait_packets(GUILD, pitch_at + 60, "1.2 s pitched")
        .await?;
    let reset_at = s.packets(GUILD).await?;
    player
        .set_filters(Filters::default())
        .await
        .map_err(lerr("reset filters"))?;
    s.wait_packets(GUILD, reset_at + 35, "0.7 s after the reset")
        .await?;
    let pause_at = s.packets(GUILD).await?;
    let p = player.set_pause(true).await.map_err(lerr("pause"))?;
    ensure!(p.paused, "not paused after set_pause(true)");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let paused_at = s.packets(GUILD).await?;
    let pos = s
        .client()
        .request_player(GUILD)
        .await
        .map_err(lerr("get player"))?
        .state
        .position;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = s.packets(GUILD).await?;
    ensure!(
        later == paused_at,
        "{} packets while paused",
        later - paused_at
    );
    let pos2 = s
        .client()
        .request_player(GUILD)
        .await
        .map_err(lerr("get player"))?
        .state
        .position;
    ensure!(
        pos == pos2,
        "the position moved while paused: {pos} → {pos2} ms"
    );
    ensure!(
        paused_at - pause_at <= 15,
        "{} packets after the pause",
        paused_at - pause_at
    );
    let from = s.log.len();
    player.set_pause(false).await.map_err(lerr("resume"))?;
    s.wait_packets(GUILD, paused_at + 25, "0.5 s after resuming")
        .await?;
    let volume_at = s.packets(GUILD).await?;
    let p = player.set_volume(50).await.map_err(lerr("volume"))?;
    ensure!(p.volume == 50, "volume {}", p.volume);

    // The mp3 plays to its end; lavalink-rs then starts the next queued track by itself.
    let end = s
        .log
        .wait(from, "TrackEnd of the mp3", |e| match e {
            Ev::End(t) if t.guild_id.0 == GUILD => Some(t.clone()),
            _ => None,
        })
        .await?;
    let end_at = s.packets(GUILD).await?;
    ensure!(
        end.reason == TrackEndReason::Finished,
        "reason {:?}",
        end.reason
    );
    ensure!(
        end.track.info.uri == mp3.info.uri,
        "ended {:?}",
        end.track.info
    );
    let next = s
        .log
        .wait(from, "TrackStart of the next queued track", |e| match e {
            Ev::Start(t) if t.guild_id.0 == GUILD => Some(t.clone()),
            _ => None,
        })
        .await?;
    ensure!(
        next.track.info.uri == flac.info.uri,
        "next {:?}",
        next.track.info
    );

    let rep = s.fake.report(GUILD, 0.1).await?;
    let ws = audio::windows(&rep);
    let t = at_packet;
    let all = describe(&runs(&ws, 0.0, f64::INFINITY, 1.0));
    let first = steps(&runs(&ws, 0.0, t(seek_at), 1.0), 0.25);
    ensure!(first == [0, 1, 2], "from the start: {first:?}; steps {all}");
    let after_seek = steps(&runs(&ws, t(seek_at) + 0.25, t(pitch_at), 1.0), 0.25);
    ensure!(
        after_seek.first() == Some(&4),
        "after seeking to 4 s: {after_seek:?}; steps {all}"
    );
    // timescale pitch 1.5: the same steps, every tone 1.5 times higher.
    let pitched = runs(&ws, t(pitch_at) + 0.3, t(reset_at), 1.5);
    let pitched_steps = steps(&pitched, 0.25);
    ensure!(
        !pitched_steps.is_empty() && pitched_steps.iter().all(|k| *k == 5 || *k == 6),
        "pitched ×1.5: {}; steps {all}",
        describe(&pitched)
    );
    ensure!(
        audio::step_seconds(&pitched) >= 0.6,
        "only {:.1} s read as pitched ×1.5: {}",
        audio::step_seconds(&pitched),
        describe(&pitched)
    );
    let after_reset = steps(&runs(&ws, t(reset_at) + 0.2, t(pause_at), 1.0), 0.1);
    ensure!(
        !after_reset.is_empty() && after_reset.iter().all(|k| *k == 6 || *k == 7),
        "after the filter reset: {after_reset:?}; steps {all}"
    );
    // The position survives the pause: the last step before it and the first after it are the
    // step at the position the node reported while paused (either neighbour within 150 ms of a
    // step boundary, where a 100 ms window cannot tell).
    let near =
        |k: u32| (pos.saturating_sub(150) / 1000..=(pos + 150) / 1000).contains(&u64::from(k));
    let before_pause = steps(&runs(&ws, t(pause_at) - 0.4, t(pause_at), 1.0), 0.1);
    let after_resume = steps(&runs(&ws, t(paused_at) + 0.1, t(volume_at), 1.0), 0.1);
    ensure!(
        before_pause.last().is_some_and(|k| near(*k))
            && after_resume.first().is_some_and(|k| near(*k)),
        "paused at {pos} ms: before the pause {before_pause:?}, after resuming {after_resume:?}; \
         steps {all}"
    );
    // Volume 50: Lavalink's curve.
    let want = audio::volume_gain_db(50.0);
    let got = level(&ws, t(volume_at) + 0.3, t(volume_at) + 0.9).unwrap_or(f64::NAN)
        - level(&ws, t(paused_at) + 0.05, t(volume_at)).unwrap_or(f64::NAN);
    ensure!(
        (got - want).abs() < 1.0,
        "volume 50 changed the level by {got:.2} dB, want {want:.2}"
    );
    let tail = steps(&runs(&ws, t(volume_at), t(end_at), 1.0), 0.25);
    ensure!(
        tail.last() == Some(&9),
        "the end of the track: {tail:?}; steps {all}"
    );
    println!(
        "  # {} packets, gap_max {}, steps: {all}",
        rep["packets"], rep["gap_max"]
    );
    Ok(())
}

async fn stage_filter_and_stop(s: &mut State) -> Res<()> {
    let player = s.player();
    let start = s.packets(GUILD).await?;
    let filter_at = s
        .wait_packets(GUILD, start + 30, "0.6 s of the second track")
        .await?;
    let p = player
        .set_filters(Filters {
            volume: Some(0.5),
            ..Default::default()
        })
        .await
        .map_err(lerr("volume filter"))?;
    let v = p.filters.and_then(|f| f.volume);
    ensure!(v == Some(0.5), "filters.volume after the PATCH {v:?}");
    let stop_at = s
        .wait_packets(GUILD, filter_at + 45, "0.9 s filtered")
        .await?;
    let from = s.log.len();
    let p = player.stop_now().await.map_err(lerr("stop"))?;
    ensure!(p.track.is_none(), "a track after stop: {:?}", p.track);
    let end = s
        .log
        .wait(from, "TrackEnd after stop", |e| match e {
            Ev::End(t) if t.guild_id.0 == GUILD => Some(t.clone()),
            _ => None,
        })
        .await?;
    ensure!(
        end.reason == TrackEndReason::Stopped,
        "reason {:?}",
        end.reason
    );
    let remote = s
        .client()
        .request_player(GUILD)
        .await
        .map_err(lerr("get player"))?;
    ensure!(
        remote.track.is_none(),
        "the node still has {:?}",
        remote.track
    );
    ensure!(remote.volume == 50, "volume {}", remote.volume);

    let ws = audio::windows(&s.fake.report(GUILD, 0.1).await?);
    let t = at_packet;
    let want = audio::volume_filter_gain_db(0.5);
    let got = level(&ws, t(filter_at) + 0.3, t(stop_at)).unwrap_or(f64::NAN)
        - level(&ws, t(start) + 0.1, t(filter_at)).unwrap_or(f64::NAN);
    ensure!(
        (got - want).abs() < 1.0,
        "the volume filter 0.5 changed the level by {got:.2} dB, want {want:.2}"
    );
    s.assert_clean_stream(GUILD).await
}

/// The bot process of the resume stage (`--resume-bot`): connects, enables resuming, plays a
/// track, prints its session id and waits to be killed.
async fn resume_bot(args: &[String]) -> Res<()> {
    let [addr, guild, channel, token, session, endpoint, url] = args else {
        return Err(format!("--resume-bot: bad arguments {args:?}"));
    };
    let guild: u64 = guild.parse().map_err(|_| "guild")?;
    let channel: u64 = channel.parse().map_err(|_| "channel")?;
    let (client, log) = connect(addr, None).await;
    let ready = log
        .wait(0, "ready", |e| match e {
            Ev::Ready(r) => Some(r.clone()),
            _ => None,
        })
        .await?;
    let node = client.get_node_for_guild(guild).await;
    let state = node
        .http
        .set_resuming_state(
            &ready.session_id,
            &ResumingState {
                resuming: Some(true),
                timeout: Some(60),
            },
        )
        .await
        .map_err(lerr("PATCH session"))?;
    ensure!(state.resuming == Some(true), "resuming state {state:?}");
    let creds = Creds {
        token: token.clone(),
        session_id: session.clone(),
        endpoint: endpoint.clone(),
    };
    let info = join_voice(&client, guild, channel, &creds).await?;
    let player = client
        .create_player_context(guild, info)
        .await
        .map_err(lerr("create_player_context"))?;
    let res = client
        .load_tracks(guild, url)
        .await
        .map_err(lerr("load_tracks"))?;
    let Some(TrackLoadData::Track(track)) = res.data else {
        return Err(format!("load {url}: {:?}", res.data));
    };
    player.play(&track).await.map_err(lerr("play"))?;
    log.wait(0, "TrackStart", |e| matches!(e, Ev::Start(_)).then_some(()))
        .await?;
    println!("{}", json!({ "session_id": ready.session_id }));
    std::future::pending::<()>().await;
    Ok(())
}

async fn stage_resume(s: &mut State) -> Res<()> {
    let creds = s
        .fake
        .register(RESUME_GUILD, BOT_ID, RESUME_CHANNEL)
        .await?;
    let url = s.media.url("staircase/staircase.flac");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut bot = tokio::process::Command::new(exe)
        .arg("--resume-bot")
        .args([
            s.node.addr.clone(),
            RESUME_GUILD.to_string(),
            RESUME_CHANNEL.to_string(),
            creds.token.clone(),
            creds.session_id.clone(),
            creds.endpoint.clone(),
            url.clone(),
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the bot process: {e}"))?;
    let mut lines = BufReader::new(bot.stdout.take().expect("piped")).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .map_err(|_| "the bot process did not report its session")?
        .map_err(|e| e.to_string())?
        .ok_or("the bot process exited")?;
    let session: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
    let session = session["session_id"].as_str().unwrap_or("").to_owned();
    s.wait_packets(RESUME_GUILD, 50, "1 s of the bot's track")
        .await?;
    // The bot process crashes.
    bot.start_kill().map_err(|e| e.to_string())?;
    bot.wait().await.map_err(|e| e.to_string())?;
    let at_crash = s.packets(RESUME_GUILD).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The restarted bot: the old session id in its NodeBuilder (lavalink-rs's way to resume).
    let (client, log) = connect(&s.node.addr, Some(session.clone())).await;
    let ready = log
        .wait(0, "ready", |e| match e {
            Ev::Ready(r) => Some(r.clone()),
            _ => None,
        })
        .await?;
    ensure!(ready.resumed, "ready.resumed is false");
    ensure!(
        ready.session_id == session,
        "session {} != {session}",
        ready.session_id
    );
    let players = client
        .request_all_players(RESUME_GUILD)
        .await
        .map_err(lerr("get players"))?;
    let mine = players
        .iter()
        .find(|p| p.guild_id.0 == RESUME_GUILD)
        .ok_or(format!("the resumed session has no player: {players:?}"))?;
    let uri = mine.track.as_ref().and_then(|t| t.info.uri.clone());
    ensure!(uri.as_deref() == Some(url.as_str()), "track {uri:?}");
    ensure!(mine.state.connected, "state {:?}", mine.state);
    let now = s.packets(RESUME_GUILD).await?;
    ensure!(
        now > at_crash + 30,
        "the player did not keep playing while the bot was down ({at_crash} → {now})"
    );
    let streams = s.fake.reports(RESUME_GUILD).await?.len();
    ensure!(
        streams == 1,
        "{streams} voice connections (the voice was reconnected)"
    );

    // The resumed client controls the player, and its events reach the new connection.
    let seek_at = s.packets(RESUME_GUILD).await?;
    client
        .update_player(
            RESUME_GUILD,
            &UpdatePlayer {
                position: Some(1000),
                ..Default::default()
            },
            true,
        )
        .await
        .map_err(lerr("seek"))?;
    let replace_at = s
        .wait_packets(RESUME_GUILD, seek_at + 40, "0.8 s after the seek")
        .await?;
    let mp3 = s.mp3.clone().expect("loaded");
    client
        .update_player(
            RESUME_GUILD,
            &UpdatePlayer {
                track: Some(UpdatePlayerTrack {
                    encoded: Some(mp3.encoded.clone()),
                    ..Default::default()
                }),
                position: Some(7000),
                ..Default::default()
            },
            false,
        )
        .await
        .map_err(lerr("replace"))?;
    let end = log
        .wait(0, "TrackEnd (replaced)", |e| match e {
            Ev::End(t) if t.guild_id.0 == RESUME_GUILD => Some(t.clone()),
            _ => None,
        })
        .await?;
    ensure!(
        end.reason == TrackEndReason::Replaced,
        "reason {:?}",
        end.reason
    );
    let start = log
        .wait(0, "TrackStart of the replacement", |e| match e {
            Ev::Start(t) if t.guild_id.0 == RESUME_GUILD => Some(t.clone()),
            _ => None,
        })
        .await?;
    ensure!(
        start.track.info.uri == mp3.info.uri,
        "started {:?}",
        start.track.info
    );
    s.wait_packets(RESUME_GUILD, replace_at + 40, "0.8 s of the replacement")
        .await?;
    let ws = audio::windows(&s.fake.report(RESUME_GUILD, 0.1).await?);
    let t = at_packet;
    let all = describe(&runs(&ws, 0.0, f64::INFINITY, 1.0));
    let after_seek = steps(&runs(&ws, t(seek_at) + 0.25, t(replace_at), 1.0), 0.25);
    ensure!(
        after_seek == [1],
        "after seeking to 1 s: {after_seek:?}; steps {all}"
    );
    let after_replace = steps(&runs(&ws, t(replace_at) + 0.25, f64::INFINITY, 1.0), 0.25);
    ensure!(
        after_replace.first() == Some(&7),
        "the replacement from 7 s: {after_replace:?}; steps {all}"
    );
    s.assert_clean_stream(RESUME_GUILD).await?;
    client
        .delete_player(RESUME_GUILD)
        .await
        .map_err(lerr("delete"))?;
    Ok(())
}

/// lavalink-rs's own reconnect: when its WebSocket drops it reconnects (every 15 s) with the
/// session id from the last `ready`, so a session with resuming on comes back, and the events
/// the node queued meanwhile (here the track's end) arrive after `ready{resumed: true}`.
async fn stage_reconnect(s: &mut State) -> Res<()> {
    let net = proxy::Proxy::start(&s.node.addr).await?;
    let created = Instant::now();
    let (client, log) = connect(&net.addr, None).await;
    let ready = log
        .wait(0, "ready", |e| match e {
            Ev::Ready(r) => Some(r.clone()),
            _ => None,
        })
        .await?;
    let node = client.get_node_for_guild(RECONNECT_GUILD).await;
    node.http
        .set_resuming_state(
            &ready.session_id,
            &ResumingState {
                resuming: Some(true),
                timeout: Some(60),
            },
        )
        .await
        .map_err(lerr("PATCH session"))?;
    let creds = s
        .fake
        .register(RECONNECT_GUILD, BOT_ID, RECONNECT_CHANNEL)
        .await?;
    let info = join_voice(&client, RECONNECT_GUILD, RECONNECT_CHANNEL, &creds).await?;
    let player = client
        .create_player_context(RECONNECT_GUILD, info)
        .await
        .map_err(lerr("create_player_context"))?;
    let flac = s.playlist[1].clone();
    player.play(&flac).await.map_err(lerr("play"))?;
    s.wait_packets(RECONNECT_GUILD, 50, "1 s played").await?;
    // The client's reconnect timer ticks 15 s after it was created; the 10 s track ends before.
    ensure!(
        created.elapsed() < Duration::from_secs(4),
        "too slow to start: {:?}",
        created.elapsed()
    );
    let cut_events = log.len();
    net.cut();
    let at_cut = s.packets(RECONNECT_GUILD).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        !node.is_running.load(std::sync::atomic::Ordering::SeqCst),
        "the client did not notice the dropped connection"
    );
    let later = s.packets(RECONNECT_GUILD).await?;
    ensure!(
        later > at_cut + 50,
        "the player stopped with the client's connection"
    );
    let resumed_at = log
        .wait(cut_events, "ready after the reconnect", |e| match e {
            Ev::Ready(r) => Some(r.clone()),
            _ => None,
        })
        .await;
    // The wait above is 15 s; the reconnect tick is at most 15 s after creation, well within.
    let resumed = resumed_at?;
    ensure!(
        resumed.resumed,
        "ready.resumed is false after the reconnect"
    );
    ensure!(
        resumed.session_id == ready.session_id,
        "a new session {} instead of {}",
        resumed.session_id,
        ready.session_id
    );
    let end = log
        .wait(cut_events, "the queued TrackEnd", |e| match e {
            Ev::End(t) if t.guild_id.0 == RECONNECT_GUILD => Some(t.clone()),
            _ => None,
        })
        .await?;
    // The node sends the queued event after ready{resumed: true}, on the new connection.
    // (lavalink-rs runs each message's hooks in a task of its own, so the order in which the
    // hooks ran says nothing about the order on the wire.)
    let wire = net.received();
    let resumed_conn = wire
        .iter()
        .find(|c| proxy::find(c, "\"resumed\":true").is_some())
        .ok_or("no connection carried ready{resumed: true}")?;
    let ready_at = proxy::find(resumed_conn, "\"resumed\":true");
    let end_at = proxy::find(resumed_conn, "TrackEndEvent");
    ensure!(
        end_at.is_some() && end_at > ready_at,
        "on the resumed connection: ready at byte {ready_at:?}, TrackEndEvent at {end_at:?}"
    );
    ensure!(
        end.reason == TrackEndReason::Finished,
        "reason {:?}",
        end.reason
    );
    let streams = s.fake.reports(RECONNECT_GUILD).await?.len();
    ensure!(streams == 1, "{streams} voice connections");
    let ws = audio::windows(&s.fake.report(RECONNECT_GUILD, 0.1).await?);
    let heard = steps(&runs(&ws, 0.0, f64::INFINITY, 1.0), 0.25);
    ensure!(
        heard == (0..=9).collect::<Vec<u32>>(),
        "steps across the disconnect: {}",
        describe(&runs(&ws, 0.0, f64::INFINITY, 1.0))
    );
    s.assert_clean_stream(RECONNECT_GUILD).await?;
    client
        .delete_player(RECONNECT_GUILD)
        .await
        .map_err(lerr("delete"))?;
    Ok(())
}

async fn stage_destroy(s: &mut State) -> Res<()> {
    let since = s.fake.events(0).await?.len();
    let client = s.client();
    client.delete_player(GUILD).await.map_err(lerr("delete"))?;
    // The bot leaves the channel; its VOICE_STATE_UPDATE goes to the client as well.
    client.handle_voice_state_update(GUILD, None::<u64>, BOT_ID, String::new());
    let deadline = Instant::now() + T;
    loop {
        let evs = s.fake.events(since).await?;
        if evs
            .iter()
            .any(|e| e["kind"] == "closed" && e["guild_id"] == GUILD)
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the voice connection was not closed; events {evs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        client.get_player_context(GUILD).is_none(),
        "the client still has the player context"
    );
    let players = client
        .request_all_players(GUILD)
        .await
        .map_err(lerr("get players"))?;
    ensure!(players.is_empty(), "players left: {players:?}");
    let bad: Vec<String> = s
        .log
        .all()
        .iter()
        .filter(|e| matches!(e, Ev::Exception(_) | Ev::Stuck(_) | Ev::Closed(_)))
        .map(brief)
        .collect();
    ensure!(bad.is_empty(), "unexpected events: {bad:?}");
    Ok(())
}

fn env() -> Res<Env> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = |var: &str, name: &str| {
        std::env::var(var).unwrap_or_else(|_| target.join("debug").join(name).display().to_string())
    };
    let media = std::env::var_os("ACOUSTIC_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("tests/media/generated"));
    ensure!(
        media.join("playlist.m3u").is_file(),
        "no test media in {}: run tests/media/generate.sh (run.sh does)",
        media.display()
    );
    let dir = std::env::temp_dir().join(format!("acoustic-rs-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(Env {
        acoustic: bin("ACOUSTIC_BIN", "acoustic"),
        fake: bin("FAKE_DISCORD_BIN", "fake-discord"),
        media,
        dir,
    })
}

async fn setup() -> Res<State> {
    let env = env()?;
    let fake = Fake::start(&env.fake, &env.dir).await?;
    let media = media::MediaServer::start(&env.media).map_err(|e| e.to_string())?;
    let node = node::Node::start(&env.acoustic, &env.dir, &fake.ca_file).await?;
    Ok(State {
        env,
        fake,
        media,
        node,
        client: None,
        log: Arc::default(),
        player: None,
        mp3: None,
        playlist: Vec::new(),
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--resume-bot") {
        if let Err(e) = resume_bot(&args[1..]).await {
            eprintln!("resume bot: {e}");
            std::process::exit(1);
        }
        return;
    }
    let t0 = Instant::now();
    let mut s = match setup().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("FAIL setup: {e}");
            std::process::exit(1);
        }
    };
    println!("lavalink-rs against Acoustic at {}", s.node.addr);
    macro_rules! stages {
        ($($name:literal => $f:ident),+ $(,)?) => {{
            let mut failed = None;
            $(
                if failed.is_none() {
                    let t = Instant::now();
                    match $f(&mut s).await {
                        Ok(()) => println!("ok   {} ({:.1} s)", $name, t.elapsed().as_secs_f64()),
                        Err(e) => {
                            println!("FAIL {}: {e}", $name);
                            failed = Some($name);
                        }
                    }
                }
            )+
            failed
        }};
    }
    let failed = stages!(
        "connect, ready, version, info, stats" => stage_connect,
        "load an http track, an M3U playlist and a non-audio file; decode" => stage_load,
        "join voice from the bot's voice state and server updates" => stage_join,
        "queue, play, seek, timescale, reset, pause/resume, volume, auto-advance" => stage_play,
        "volume filter and stop on the next track" => stage_filter_and_stop,
        "resume the session after the bot process is killed" => stage_resume,
        "the client's own reconnect resumes the session after a network cut" => stage_reconnect,
        "destroy the player" => stage_destroy,
    );
    let secs = t0.elapsed().as_secs_f64();
    match failed {
        None => {
            println!("all stages passed in {secs:.1} s");
            let _ = std::fs::remove_dir_all(&s.env.dir);
        }
        Some(name) => {
            println!(
                "failed at \"{name}\" after {secs:.1} s; node log: {}",
                s.node.log.display()
            );
            std::process::exit(1);
        }
    }
}
