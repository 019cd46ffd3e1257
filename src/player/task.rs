//! The player's own task: turns audio and voice signals into Lavalink events, sends periodic
//! `playerUpdate`s while a track is loaded, and ends tracks nobody pulls audio from (`cleanup`).

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Inner, Player, PlayerSignal, drop_off_thread, playback_exception};
use crate::audio::frame_ring::EndKind;
use crate::audio::player_audio::AudioSignal;
use crate::protocol::messages::{Event, OutgoingMessage, TrackEndReason};
use crate::voice::VoiceEvent;

/// A track nobody pulls frames from for this long ends with `cleanup`.
const CLEANUP_THRESHOLD: Duration = Duration::from_secs(60);
/// How often the cleanup rule is checked.
const CLEANUP_CHECK: Duration = Duration::from_secs(10);

pub(super) async fn run(
    player: Weak<Player>,
    mut signals: UnboundedReceiver<PlayerSignal>,
    mut audio: UnboundedReceiver<AudioSignal>,
) {
    let update_every = match player.upgrade() {
        Some(p) => p.ctx.player_update_interval,
        None => return,
    };
    let mut updates = tokio::time::interval_at(Instant::now() + update_every, update_every);
    updates.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut cleanup = tokio::time::interval(CLEANUP_CHECK);
    let mut last_requests = 0u64;
    let mut last_request_change = Instant::now();
    let mut loaded_generation = None::<u32>;

    loop {
        tokio::select! {
            sig = signals.recv() => {
                let Some(sig) = sig else { break };
                let Some(p) = player.upgrade() else { break };
                p.handle(sig).await;
            }
            sig = audio.recv() => {
                let Some(sig) = sig else { break };
                let Some(p) = player.upgrade() else { break };
                p.handle(PlayerSignal::Audio(sig)).await;
            }
            _ = updates.tick() => {
                let Some(p) = player.upgrade() else { break };
                let inner = p.inner.lock().await;
                if inner.track.is_some() {
                    p.send_player_update(&inner);
                }
            }
            _ = cleanup.tick() => {
                let Some(p) = player.upgrade() else { break };
                let mut inner = p.inner.lock().await;
                let requests = p.audio.counters.requests.load(Ordering::Relaxed);
                let track_generation = inner.track.as_ref().map(|t| t.first_generation);
                if requests != last_requests || track_generation != loaded_generation {
                    last_requests = requests;
                    last_request_change = Instant::now();
                    loaded_generation = track_generation;
                } else if inner.track.is_some() && last_request_change.elapsed() >= CLEANUP_THRESHOLD {
                    p.end_current(&mut inner, TrackEndReason::Cleanup);
                }
            }
        }
        // Restart the update cadence when a new track is loaded.
        if let Some(p) = player.upgrade() {
            let generation = p
                .inner
                .lock()
                .await
                .track
                .as_ref()
                .map(|t| t.first_generation);
            if generation.is_some() && generation != loaded_generation {
                loaded_generation = generation;
                last_request_change = Instant::now();
                last_requests = p.audio.counters.requests.load(Ordering::Relaxed);
                updates.reset();
            }
        }
    }
}

/// Whether `generation` belongs to the track that started at `first` (later ones are its seeks).
fn belongs(generation: u32, first: u32) -> bool {
    generation.wrapping_sub(first) < u32::MAX / 2
}

impl Player {
    fn current_owns(inner: &Inner, generation: u32) -> bool {
        inner
            .track
            .as_ref()
            .is_some_and(|t| belongs(generation, t.first_generation))
    }

    async fn handle(&self, sig: PlayerSignal) {
        let mut inner = self.inner.lock().await;
        match sig {
            PlayerSignal::Opened { generation, result } => {
                if !Self::current_owns(&inner, generation) {
                    // A stale open of a track that was replaced or stopped.
                    drop_off_thread(result.ok());
                    return;
                }
                match result {
                    Ok(pipeline) => self.install_or_reseek(&inner, generation, pipeline),
                    Err(exception) => self.fail_current(&inner, exception),
                }
            }
            PlayerSignal::Seeked { generation, result } => {
                if !Self::current_owns(&inner, generation) {
                    drop_off_thread(result.ok());
                    return;
                }
                match result {
                    Ok(pipeline) => self.install_or_reseek(&inner, generation, pipeline),
                    Err(message) => self.fail_current(&inner, playback_exception(&message)),
                }
            }
            PlayerSignal::Audio(AudioSignal::Started { generation }) => {
                if Self::current_owns(&inner, generation)
                    && let Some(current) = inner.track.as_mut()
                    && !current.started
                {
                    current.started = true;
                    // The track as the client asked for it: at its start position (Lavalink
                    // fires this event before any audio moves the position), so its `encoded`
                    // matches what the client sent, whatever frame the audio is at by now.
                    let track = crate::track::to_track(
                        &current.data,
                        current.target_position,
                        current.user_data.clone(),
                    );
                    self.outbox
                        .send(&OutgoingMessage::Event(Event::TrackStartEvent {
                            guild_id: self.guild_id.to_string(),
                            track,
                        }));
                }
            }
            PlayerSignal::Audio(AudioSignal::Failed {
                generation,
                message,
                ..
            }) => {
                if let Some(current) = inner
                    .track
                    .as_ref()
                    .filter(|_| Self::current_owns(&inner, generation))
                {
                    self.outbox
                        .send(&OutgoingMessage::Event(Event::TrackExceptionEvent {
                            guild_id: self.guild_id.to_string(),
                            track: self.event_track(current),
                            exception: playback_exception(&message),
                        }));
                }
            }
            PlayerSignal::Audio(AudioSignal::Ended { generation, kind }) => {
                if Self::current_owns(&inner, generation) {
                    let reason = match kind {
                        EndKind::Finished => TrackEndReason::Finished,
                        EndKind::LoadFailed => TrackEndReason::LoadFailed,
                    };
                    self.end_current(&mut inner, reason);
                }
            }
            PlayerSignal::Audio(AudioSignal::Stuck { generation }) => {
                if let Some(current) = inner
                    .track
                    .as_ref()
                    .filter(|_| Self::current_owns(&inner, generation))
                {
                    self.outbox
                        .send(&OutgoingMessage::Event(Event::TrackStuckEvent {
                            guild_id: self.guild_id.to_string(),
                            track: self.event_track(current),
                            threshold_ms: self.ctx.track_stuck_threshold_ms as i64,
                        }));
                    self.send_player_update(&inner);
                }
            }
            PlayerSignal::Voice(VoiceEvent::Ready) => self.send_player_update(&inner),
            PlayerSignal::Voice(VoiceEvent::Closed {
                code,
                reason,
                by_remote,
            }) => {
                self.outbox
                    .send(&OutgoingMessage::Event(Event::WebSocketClosedEvent {
                        guild_id: self.guild_id.to_string(),
                        code,
                        reason,
                        by_remote,
                    }));
                self.send_player_update(&inner);
            }
        }
    }

    /// Installs a pipeline that finished opening/seeking, or seeks it again if the player moved
    /// on to a newer seek meanwhile.
    fn install_or_reseek(
        &self,
        inner: &Inner,
        generation: u32,
        pipeline: crate::audio::pipeline::TrackPipeline,
    ) {
        let now = self.audio.generation();
        if generation == now {
            if let Err(p) = self.audio.install(generation, pipeline) {
                drop_off_thread(Some(p));
            }
        } else if let Some(current) = inner.track.as_ref() {
            self.spawn_seek(now, pipeline, current.target_position);
        }
    }

    /// The current track failed before it could play: exception now, end when drained.
    fn fail_current(&self, inner: &Inner, exception: crate::protocol::load::Exception) {
        let Some(current) = inner.track.as_ref() else {
            return;
        };
        self.outbox
            .send(&OutgoingMessage::Event(Event::TrackExceptionEvent {
                guild_id: self.guild_id.to_string(),
                track: self.event_track(current),
                exception: exception.clone(),
            }));
        self.audio.fail(self.audio.generation());
    }
}
