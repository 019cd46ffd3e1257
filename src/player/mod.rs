//! One player (one guild of one session): its state machine, position, events, `endTime`,
//! stuck detection and cleanup, and its voice connection.
//!
//! Request handlers call the async methods below, which lock the player's state briefly and
//! emit events before returning (so a PATCH's events precede its response). Everything that
//! happens later — the first frame produced, the end of a track, a failure, a voice close — is
//! a signal handled by the player's own task ([`task`]). The audio and the pacer never lock this
//! state: they share only [`PlayerAudio`]'s atomics and frame ring.

mod task;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::audio::engine::AudioEngine;
use crate::audio::filters::FilterChain;
use crate::audio::pipeline::TrackPipeline;
use crate::audio::player_audio::{AudioSignal, PlayerAudio};
use crate::protocol::filters::Filters;
use crate::protocol::load::Exception;
use crate::protocol::messages::{Event, OutgoingMessage, TrackEndReason};
use crate::protocol::player::{Player as PlayerJson, PlayerState, VoiceState};
use crate::session::Outbox;
use crate::sources::{SourceManagers, TrackData};
use crate::voice::{
    PacerKey, VoiceConnection, VoiceContext, VoiceEvent, VoiceServerInfo, VoiceSlot,
};

/// What every player of the node shares.
pub struct PlayerContext {
    pub sources: Arc<SourceManagers>,
    pub engine: Arc<AudioEngine>,
    pub voice: Arc<VoiceContext>,
    pub player_update_interval: std::time::Duration,
    pub track_stuck_threshold_ms: u64,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Messages to the player's task.
pub(crate) enum PlayerSignal {
    Audio(AudioSignal),
    Voice(VoiceEvent),
    /// A track's pipeline finished opening (or failed to).
    Opened {
        generation: u32,
        result: Result<TrackPipeline, Exception>,
    },
    /// A seek finished (or failed).
    Seeked {
        generation: u32,
        result: Result<TrackPipeline, String>,
    },
}

/// The track currently loaded.
struct Current {
    data: TrackData,
    user_data: Map<String, Value>,
    end_time: Option<i64>,
    /// Generation the track started with; later generations (seeks) still belong to it.
    first_generation: u32,
    /// Latest seek target (for re-seeking a pipeline that was busy when the seek came in).
    target_position: i64,
    started: bool,
}

struct Inner {
    track: Option<Current>,
    volume: i32,
    paused: bool,
    filters: Filters,
    voice_state: Option<VoiceState>,
    connection: Option<VoiceConnection>,
    destroyed: bool,
}

/// A player.
pub struct Player {
    pub guild_id: u64,
    user_id: u64,
    ctx: Arc<PlayerContext>,
    outbox: Arc<Outbox>,
    audio: Arc<PlayerAudio>,
    slot: Arc<VoiceSlot>,
    pacer_key: parking_lot::Mutex<Option<PacerKey>>,
    signals: UnboundedSender<PlayerSignal>,
    inner: tokio::sync::Mutex<Inner>,
    /// Mirrors of `inner` for node-wide counts without locking.
    has_track: AtomicBool,
    paused: AtomicBool,
    frame_minute: parking_lot::Mutex<FrameMinute>,
}

/// Per-minute frame accounting for `frameStats` (spec §4.5).
#[derive(Default)]
struct FrameMinute {
    /// Counters at the start of the current minute.
    sent_at_start: u64,
    nulled_at_start: u64,
    /// Whether the player was playing at the start of the current minute.
    playing_at_start: bool,
    /// The previous full minute's (sent, nulled), if the player played through all of it.
    last_full_minute: Option<(u64, u64)>,
}

/// Why a PATCH step failed (mapped to HTTP errors by the API).
#[derive(Debug)]
pub enum PlayerError {
    /// The player was destroyed while the request ran.
    Destroyed,
}

impl Player {
    /// Creates a player and starts its task.
    pub fn new(
        guild_id: u64,
        user_id: u64,
        ctx: Arc<PlayerContext>,
        outbox: Arc<Outbox>,
    ) -> Arc<Player> {
        let (audio_tx, audio_rx) = unbounded_channel();
        let (tx, rx) = unbounded_channel();
        let audio = ctx
            .engine
            .new_player(audio_tx, ctx.track_stuck_threshold_ms);
        let slot = VoiceSlot::new();
        let pacer_key = ctx
            .voice
            .register(slot.clone(), Box::new(audio.frame_source()));
        let player = Arc::new(Player {
            guild_id,
            user_id,
            ctx,
            outbox,
            audio,
            slot,
            pacer_key: parking_lot::Mutex::new(Some(pacer_key)),
            signals: tx,
            inner: tokio::sync::Mutex::new(Inner {
                track: None,
                volume: 100,
                paused: false,
                filters: Filters::default(),
                voice_state: None,
                connection: None,
                destroyed: false,
            }),
            has_track: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            frame_minute: parking_lot::Mutex::new(FrameMinute::default()),
        });
        tokio::spawn(task::run(Arc::downgrade(&player), rx, audio_rx));
        player
    }

    /// A track is loaded.
    pub fn has_track(&self) -> bool {
        self.has_track.load(Ordering::Acquire)
    }

    /// A track is loaded and not paused (Lavalink's "playing").
    pub fn is_playing(&self) -> bool {
        self.has_track() && !self.paused.load(Ordering::Acquire)
    }

    /// Frames sent and slots nulled so far.
    pub fn frame_counters(&self) -> (u64, u64) {
        let c = &self.audio.counters;
        (
            c.sent.load(Ordering::Relaxed),
            c.nulled.load(Ordering::Relaxed),
        )
    }

    /// Frames sent, slots nulled, and slots missed because the pacer was late (node metrics).
    pub fn frame_totals(&self) -> (u64, u64, u64) {
        let (sent, nulled) = self.frame_counters();
        (sent, nulled, self.slot.frame_counts().missed)
    }

    /// Closes the current wall-clock minute of frame accounting (called once a minute).
    pub fn roll_frame_minute(&self) {
        let (sent, nulled) = self.frame_counters();
        let playing = self.is_playing();
        let mut m = self.frame_minute.lock();
        m.last_full_minute = (m.playing_at_start && playing).then(|| {
            (
                sent.saturating_sub(m.sent_at_start),
                nulled.saturating_sub(m.nulled_at_start),
            )
        });
        m.sent_at_start = sent;
        m.nulled_at_start = nulled;
        m.playing_at_start = playing;
    }

    /// The previous full minute's (sent, nulled), if this player is playing and played through it.
    pub fn last_full_minute(&self) -> Option<(u64, u64)> {
        if !self.is_playing() {
            return None;
        }
        self.frame_minute.lock().last_full_minute
    }

    /// The player as REST returns it.
    pub async fn snapshot(&self) -> PlayerJson {
        let inner = self.inner.lock().await;
        self.snapshot_locked(&inner)
    }

    fn snapshot_locked(&self, inner: &Inner) -> PlayerJson {
        let position = if inner.track.is_some() {
            self.audio.position_ms()
        } else {
            0
        };
        PlayerJson {
            guild_id: self.guild_id.to_string(),
            track: inner
                .track
                .as_ref()
                .map(|t| crate::track::to_track(&t.data, position, t.user_data.clone())),
            volume: inner.volume,
            paused: inner.paused,
            state: self.state_locked(inner),
            voice: inner.voice_state.clone().unwrap_or_default(),
            filters: inner.filters.clone(),
        }
    }

    fn state_locked(&self, inner: &Inner) -> PlayerState {
        let (connected, ping) = match &inner.connection {
            // Connected before the first heartbeat ACK: 0, as Lavalink reports it then; -1
            // means "no connection" to clients.
            Some(c) if c.is_connected() => (true, c.ping_ms().max(0)),
            _ => (false, -1),
        };
        PlayerState {
            time: crate::util::now_millis(),
            position: if inner.track.is_some() {
                self.audio.position_ms()
            } else {
                0
            },
            connected,
            ping,
        }
    }

    fn send_player_update(&self, inner: &Inner) {
        self.outbox.send_transient(&OutgoingMessage::PlayerUpdate {
            guild_id: self.guild_id.to_string(),
            state: self.state_locked(inner),
        });
    }

    /// Sends a `playerUpdate` now (used after a session resume).
    pub async fn player_update(&self) {
        let inner = self.inner.lock().await;
        self.send_player_update(&inner);
    }

    fn event_track(&self, current: &Current) -> crate::protocol::track::Track {
        crate::track::to_track(
            &current.data,
            self.audio.position_ms(),
            current.user_data.clone(),
        )
    }

    fn emit_end(&self, current: &Current, reason: TrackEndReason) {
        self.outbox
            .send(&OutgoingMessage::Event(Event::TrackEndEvent {
                guild_id: self.guild_id.to_string(),
                track: self.event_track(current),
                reason,
            }));
    }

    /// Applies new voice credentials: reconnects unless identical to an open connection.
    pub async fn set_voice(&self, state: VoiceState) -> Result<(), PlayerError> {
        let mut inner = self.inner.lock().await;
        if inner.destroyed {
            return Err(PlayerError::Destroyed);
        }
        if let Some(conn) = &inner.connection
            && conn.is_connected()
            && inner.voice_state.as_ref() == Some(&state)
        {
            return Ok(());
        }
        let channel_id = state
            .channel_id
            .as_deref()
            .and_then(|c| c.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let info = VoiceServerInfo {
            guild_id: self.guild_id,
            user_id: self.user_id,
            channel_id,
            session_id: state.session_id.clone(),
            token: state.token.clone(),
            endpoint: state.endpoint.clone(),
        };
        if let Some(old) = inner.connection.take() {
            tokio::spawn(old.disconnect());
        }
        let (vtx, mut vrx) = unbounded_channel();
        let signals = self.signals.clone();
        tokio::spawn(async move {
            while let Some(ev) = vrx.recv().await {
                if signals.send(PlayerSignal::Voice(ev)).is_err() {
                    break;
                }
            }
        });
        inner.connection = Some(VoiceConnection::connect(
            &self.ctx.voice,
            info,
            self.slot.clone(),
            vtx,
        ));
        inner.voice_state = Some(state);
        Ok(())
    }

    pub async fn set_paused(&self, paused: bool) {
        let mut inner = self.inner.lock().await;
        self.apply_paused(&mut inner, paused);
    }

    fn apply_paused(&self, inner: &mut Inner, paused: bool) {
        inner.paused = paused;
        self.paused.store(paused, Ordering::Release);
        self.audio.set_paused(paused);
    }

    /// Replaces the current track's userData (no events).
    pub async fn set_user_data(&self, user_data: Map<String, Value>) {
        let mut inner = self.inner.lock().await;
        if let Some(t) = inner.track.as_mut() {
            t.user_data = user_data;
        }
    }

    pub async fn set_volume(&self, volume: i32) {
        let mut inner = self.inner.lock().await;
        inner.volume = volume.clamp(0, 1000);
        self.audio.set_volume(inner.volume);
    }

    /// Seeks the current track (ignored without a track or on a non-seekable one), then sends a
    /// `playerUpdate`.
    pub async fn seek(&self, position_ms: i64) {
        let mut inner = self.inner.lock().await;
        let Some(current) = inner.track.as_mut() else {
            return;
        };
        if !current.data.info.is_seekable {
            return;
        }
        let position_ms = position_ms.clamp(0, current.data.info.length.max(0));
        current.target_position = position_ms;
        let (generation, pipeline) = self.audio.begin_seek(position_ms);
        if let Some(pipeline) = pipeline {
            self.spawn_seek(generation, pipeline, position_ms);
        }
        // Otherwise the pipeline is busy opening or seeking; the task re-seeks when it is back.
        self.send_player_update(&inner);
    }

    fn spawn_seek(&self, generation: u32, mut pipeline: TrackPipeline, position_ms: i64) {
        let signals = self.signals.clone();
        tokio::task::spawn_blocking(move || {
            let result = pipeline
                .seek(position_ms)
                .map(|_| pipeline)
                .map_err(|e| e.to_string());
            let _ = signals.send(PlayerSignal::Seeked { generation, result });
        });
    }

    /// Installs (`Some`) or clears (`None`) the end-time marker of the current track.
    pub async fn set_end_time(&self, end_time: Option<i64>) {
        let mut inner = self.inner.lock().await;
        if let Some(t) = inner.track.as_mut() {
            t.end_time = end_time;
            self.audio.set_end_time(end_time);
        }
    }

    /// Replaces the whole filter set and sends a `playerUpdate`.
    pub async fn set_filters(&self, filters: Filters) {
        // Tables the new filters need are built on the blocking pool, not in the frame loop.
        let needed = filters.clone();
        let prepared = tokio::task::spawn_blocking(move || FilterChain::prepare(&needed)).await;
        if let Err(e) = prepared {
            // The audio worker then builds what is missing itself; nothing is lost.
            tracing::warn!(error = %e, "preparing filter tables failed");
        }
        let mut inner = self.inner.lock().await;
        self.audio.set_filters(filters.clone());
        inner.filters = filters;
        self.send_player_update(&inner);
    }

    /// Whether a track is loaded (for `noReplace`).
    pub async fn is_track_loaded(&self) -> bool {
        self.inner.lock().await.track.is_some()
    }

    /// Stops the current track (`TrackEndEvent` `stopped`). Sets pause to `paused`.
    pub async fn stop(&self, paused: bool) {
        let mut inner = self.inner.lock().await;
        self.apply_paused(&mut inner, paused);
        self.end_current(&mut inner, TrackEndReason::Stopped);
    }

    /// Ends the current track with `reason` (emitting its end event) and clears the audio.
    fn end_current(&self, inner: &mut Inner, reason: TrackEndReason) {
        if let Some(current) = inner.track.take() {
            self.emit_end(&current, reason);
        }
        self.has_track.store(false, Ordering::Release);
        let (_, old) = self.audio.begin_generation(false, 0, None);
        drop_off_thread(old);
    }

    /// Starts `data` (replacing any current track), at `start_ms`, with the given end marker and
    /// userData; un-pauses unless `paused` says otherwise. Events: the old track's
    /// `TrackEndEvent` (`replaced`) now, `TrackStartEvent` when the first frame is produced.
    pub async fn play(
        &self,
        data: TrackData,
        start_ms: Option<i64>,
        end_time: Option<i64>,
        user_data: Option<Map<String, Value>>,
        paused: bool,
    ) -> Result<(), PlayerError> {
        let mut inner = self.inner.lock().await;
        if inner.destroyed {
            return Err(PlayerError::Destroyed);
        }
        self.apply_paused(&mut inner, paused);
        if let Some(old) = inner.track.take() {
            self.emit_end(&old, TrackEndReason::Replaced);
        }
        let start = start_ms.unwrap_or(0).max(0);
        let start = if data.info.is_seekable {
            start.min(data.info.length.max(0))
        } else {
            0
        };
        let (generation, old) = self.audio.begin_generation(true, start, end_time);
        drop_off_thread(old);
        inner.track = Some(Current {
            data: data.clone(),
            user_data: user_data.unwrap_or_default(),
            end_time,
            first_generation: generation,
            target_position: start,
            started: false,
        });
        self.has_track.store(true, Ordering::Release);

        let sources = self.ctx.sources.clone();
        let settings = self.ctx.engine.settings;
        let signals = self.signals.clone();
        let notify_audio = self.audio.clone();
        tokio::spawn(async move {
            let result = match sources.open(&data).await {
                Err(e) => Err(e),
                Ok(media) => {
                    let notify: Arc<dyn Fn() + Send + Sync> = {
                        let audio = Arc::downgrade(&notify_audio);
                        Arc::new(move || {
                            if let Some(a) = audio.upgrade() {
                                a.schedule();
                            }
                        })
                    };
                    match tokio::task::spawn_blocking(move || {
                        TrackPipeline::open(media, &settings, start, notify)
                    })
                    .await
                    {
                        Ok(Ok(p)) => Ok(p),
                        Ok(Err(e)) => Err(playback_exception(&e.to_string())),
                        Err(e) => Err(playback_exception(&e.to_string())),
                    }
                }
            };
            let _ = signals.send(PlayerSignal::Opened { generation, result });
        });
        self.send_player_update(&inner);
        Ok(())
    }

    /// Stops everything and releases the voice connection and the pacer registration.
    /// A loaded track ends with `stopped` (dropped if the session is gone). The voice connection
    /// is closed cleanly (silence frames, `speaking: 0`, close 1000) in the background.
    pub async fn destroy(&self) {
        if let Some(release) = self.teardown().await {
            tokio::spawn(release);
        }
    }

    /// As [`Player::destroy`], but returns only once the voice connection is closed (shutdown).
    pub async fn destroy_and_wait(&self) {
        if let Some(release) = self.teardown().await {
            release.await;
        }
    }

    async fn teardown(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let mut inner = self.inner.lock().await;
        if inner.destroyed {
            return None;
        }
        inner.destroyed = true;
        self.end_current(&mut inner, TrackEndReason::Stopped);
        let connection = inner.connection.take();
        drop(inner);
        let key = self.pacer_key.lock().take();
        let voice = self.ctx.voice.clone();
        let metrics = self.ctx.metrics.clone();
        let audio = self.audio.clone();
        let slot = self.slot.clone();
        Some(async move {
            // The pacer must keep visiting the player while the connection drains its silence
            // frames, so the registration goes last.
            if let Some(conn) = connection {
                conn.disconnect().await;
            }
            if let Some(key) = key {
                voice.unregister(key);
                let c = &audio.counters;
                metrics.retire_frames(
                    c.sent.load(Ordering::Relaxed),
                    c.nulled.load(Ordering::Relaxed),
                    slot.frame_counts().missed,
                );
            }
        })
    }
}

/// Lavalink's wrapper for a failure during playback.
pub(crate) fn playback_exception(cause: &str) -> Exception {
    Exception::new(
        "Something broke when playing the track.",
        crate::protocol::load::Severity::Fault,
        "java.lang.RuntimeException",
        cause,
    )
}

/// Drops a pipeline on a blocking thread (closing a network reader may wait).
fn drop_off_thread(p: Option<TrackPipeline>) {
    if let Some(p) = p {
        tokio::task::spawn_blocking(move || drop(p));
    }
}
