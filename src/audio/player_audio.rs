//! The audio half of one player: the controls the player sets, the pipeline the workers run, the
//! frame ring between them and the pacer, and the counters the pacer moves.
//!
//! Three parties touch it, each through its own door:
//! - the player task (async) installs/takes pipelines, bumps the generation, sets controls;
//! - audio workers ([`super::engine`]) fill the ring from the pipeline;
//! - the pacer thread pulls frames through [`PlayerFrameSource`] (no allocation, no lock but
//!   the ring's).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::mpsc::UnboundedSender;

use super::frame_ring::{EndKind, FrameKind, FrameRing};
use super::pipeline::{Controls, TrackPipeline};
use crate::protocol::filters::Filters;
use crate::voice::{FrameOutcome, FrameSource, MAX_OPUS_PACKET};

/// What the audio side tells the player, tagged with the track generation it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSignal {
    /// The first frame of the track was produced.
    Started { generation: u32 },
    /// Playback failed; `produced_audio` tells whether any frame had been produced.
    Failed {
        generation: u32,
        message: String,
        produced_audio: bool,
    },
    /// The pacer consumed the track's last frame (or its end marker).
    Ended { generation: u32, kind: EndKind },
    /// Frames were requested but none arrived for the stuck threshold.
    Stuck { generation: u32 },
}

/// State only the workers and the player task touch.
struct Job {
    pipeline: Option<TrackPipeline>,
    /// Generation the installed pipeline produces for.
    generation: u32,
    produced_any: bool,
    /// An end marker that did not fit in the ring yet.
    pending_end: Option<EndKind>,
}

/// Frame accounting read by the stats and the cleanup check.
#[derive(Default)]
pub struct FrameCounters {
    pub sent: AtomicU64,
    pub nulled: AtomicU64,
    /// Times the pacer asked for a frame (also while paused): the cleanup clock.
    pub requests: AtomicU64,
}

/// Shared per-player audio state.
pub struct PlayerAudio {
    pub ring: FrameRing,
    job: Mutex<Job>,
    generation: AtomicU32,
    /// A track is loaded and has not ended (from the pacer's point of view).
    track_active: AtomicBool,
    paused: AtomicBool,
    volume: AtomicI32,
    filters: ArcSwap<Filters>,
    filters_version: AtomicU64,
    end_time_ms: AtomicI64,
    position_ms: AtomicI64,
    stuck_threshold_frames: u64,
    /// Set while the job sits in the engine's queue.
    pub(super) queued: AtomicBool,
    pub counters: FrameCounters,
    signals: UnboundedSender<AudioSignal>,
    scheduler: Arc<dyn Fn(Arc<PlayerAudio>) + Send + Sync>,
}

impl PlayerAudio {
    pub(super) fn new(
        signals: UnboundedSender<AudioSignal>,
        stuck_threshold_ms: u64,
        scheduler: Arc<dyn Fn(Arc<PlayerAudio>) + Send + Sync>,
    ) -> Arc<Self> {
        Arc::new(PlayerAudio {
            ring: FrameRing::new(),
            job: Mutex::new(Job {
                pipeline: None,
                generation: 0,
                produced_any: false,
                pending_end: None,
            }),
            generation: AtomicU32::new(0),
            track_active: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            volume: AtomicI32::new(100),
            filters: ArcSwap::from_pointee(Filters::default()),
            filters_version: AtomicU64::new(0),
            end_time_ms: AtomicI64::new(i64::MAX),
            position_ms: AtomicI64::new(0),
            stuck_threshold_frames: (stuck_threshold_ms / 20).max(1),
            queued: AtomicBool::new(false),
            counters: FrameCounters::default(),
            signals,
            scheduler,
        })
    }

    /// The pacer-side consumer for this player.
    pub fn frame_source(self: &Arc<Self>) -> PlayerFrameSource {
        PlayerFrameSource {
            audio: self.clone(),
            missing: 0,
            stuck_reported_for: u32::MAX,
        }
    }

    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// Starts a new generation: a new track (`active`) or none. Drops buffered frames and any
    /// installed pipeline (returned, so the caller can drop it off the async threads).
    pub fn begin_generation(
        &self,
        active: bool,
        start_position_ms: i64,
        end_time_ms: Option<i64>,
    ) -> (u32, Option<TrackPipeline>) {
        let generation = self
            .generation
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1);
        let old = {
            let mut job = self.job.lock();
            job.generation = generation;
            job.produced_any = false;
            job.pending_end = None;
            job.pipeline.take()
        };
        self.end_time_ms
            .store(end_time_ms.unwrap_or(i64::MAX), Ordering::Release);
        self.position_ms.store(start_position_ms, Ordering::Release);
        self.track_active.store(active, Ordering::Release);
        self.ring.retain_generation(generation);
        (generation, old)
    }

    /// A seek: a new generation for the same track, keeping the "produced audio" fact.
    /// Returns the pipeline to seek (if one is installed).
    pub fn begin_seek(&self, position_ms: i64) -> (u32, Option<TrackPipeline>) {
        let generation = self
            .generation
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1);
        let old = {
            let mut job = self.job.lock();
            job.generation = generation;
            job.pending_end = None;
            job.pipeline.take()
        };
        self.position_ms.store(position_ms, Ordering::Release);
        self.track_active.store(true, Ordering::Release);
        self.ring.retain_generation(generation);
        (generation, old)
    }

    /// Installs a ready pipeline for `generation` (ignored, and returned, if that generation is
    /// no longer current) and schedules it.
    pub fn install(
        self: &Arc<Self>,
        generation: u32,
        pipeline: TrackPipeline,
    ) -> Result<(), TrackPipeline> {
        {
            let mut job = self.job.lock();
            if job.generation != generation || self.generation() != generation {
                return Err(pipeline);
            }
            job.pipeline = Some(pipeline);
        }
        self.schedule();
        Ok(())
    }

    /// The track of `generation` failed before (or while) a pipeline could be installed: its
    /// end marker (`loadFailed` unless audio was produced) goes into the ring, so the end is
    /// reported when the pacer drains it. The caller reports the exception.
    pub fn fail(self: &Arc<Self>, generation: u32) {
        {
            let mut job = self.job.lock();
            if job.generation != generation {
                return;
            }
            job.pipeline = None;
            job.pending_end = Some(if job.produced_any {
                EndKind::Finished
            } else {
                EndKind::LoadFailed
            });
        }
        self.schedule();
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    pub fn set_volume(&self, volume: i32) {
        self.volume.store(volume, Ordering::Release);
    }

    pub fn set_filters(&self, filters: Filters) {
        self.filters.store(Arc::new(filters));
        self.filters_version.fetch_add(1, Ordering::AcqRel);
    }

    /// Installs or clears (`None`) the end-time marker of the current track.
    pub fn set_end_time(&self, end_time_ms: Option<i64>) {
        self.end_time_ms
            .store(end_time_ms.unwrap_or(i64::MAX), Ordering::Release);
    }

    /// Position of the audio actually sent, in ms.
    pub fn position_ms(&self) -> i64 {
        self.position_ms.load(Ordering::Acquire)
    }

    /// Overrides the reported position (e.g. right after a seek or at track start).
    pub fn set_position_ms(&self, position_ms: i64) {
        self.position_ms.store(position_ms, Ordering::Release);
    }

    /// Puts this player on the engine's queue (no-op if already queued).
    pub fn schedule(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            (self.scheduler)(self.clone());
        }
    }

    /// Worker entry: fill the ring from the pipeline until it is full, the source would block,
    /// or the track ends. `scratch` is the worker's packet buffer.
    pub(super) fn work(self: &Arc<Self>, scratch: &mut [u8; MAX_OPUS_PACKET]) {
        loop {
            let mut job = self.job.lock();
            let generation = job.generation;
            if generation != self.generation() {
                return;
            }
            if let Some(kind) = job.pending_end {
                if self
                    .ring
                    .push(FrameKind::End(kind), generation, self.position_ms(), &[])
                {
                    job.pending_end = None;
                }
                return;
            }
            if self.ring.free() == 0 {
                return;
            }
            let controls = Controls {
                volume: self.volume.load(Ordering::Acquire),
                filters_version: self.filters_version.load(Ordering::Acquire),
                filters: &self.filters,
                end_time_ms: self.end_time_ms.load(Ordering::Acquire),
            };
            let Some(pipeline) = job.pipeline.as_mut() else {
                return;
            };
            // Nothing queued for the pacer: the track's start, a seek, or an underrun.
            let starved = self.ring.is_empty();
            if !pipeline.is_ready(starved) {
                // The reader's notify schedules us again when bytes arrive.
                return;
            }
            match pipeline.next_frame(&controls, scratch) {
                Ok(Some(frame)) => {
                    self.ring.push(
                        FrameKind::Audio,
                        generation,
                        frame.end_position_ms,
                        &scratch[..frame.len],
                    );
                    if !job.produced_any {
                        job.produced_any = true;
                        let _ = self.signals.send(AudioSignal::Started { generation });
                    }
                }
                Ok(None) => {
                    let kind = if job.produced_any {
                        EndKind::Finished
                    } else {
                        EndKind::LoadFailed
                    };
                    job.pipeline = None;
                    job.pending_end = Some(kind);
                }
                Err(e) => {
                    let produced_audio = job.produced_any;
                    job.pipeline = None;
                    job.pending_end = Some(if produced_audio {
                        EndKind::Finished
                    } else {
                        EndKind::LoadFailed
                    });
                    let _ = self.signals.send(AudioSignal::Failed {
                        generation,
                        message: e.to_string(),
                        produced_audio,
                    });
                }
            }
        }
    }
}

/// The pacer's view of a player (implements [`FrameSource`]).
pub struct PlayerFrameSource {
    audio: Arc<PlayerAudio>,
    /// Consecutive slots without a frame.
    missing: u64,
    stuck_reported_for: u32,
}

impl FrameSource for PlayerFrameSource {
    fn next_frame(&mut self, out: &mut [u8; MAX_OPUS_PACKET]) -> FrameOutcome {
        let a = &*self.audio;
        a.counters.requests.fetch_add(1, Ordering::Relaxed);
        if !a.track_active.load(Ordering::Acquire) || a.paused.load(Ordering::Acquire) {
            self.missing = 0;
            return FrameOutcome::Idle;
        }
        let generation = a.generation();
        loop {
            let Some(meta) = a.ring.pop_into(out) else {
                self.missing += 1;
                a.counters.nulled.fetch_add(1, Ordering::Relaxed);
                if self.missing >= a.stuck_threshold_frames && self.stuck_reported_for != generation
                {
                    self.stuck_reported_for = generation;
                    let _ = a.signals.send(AudioSignal::Stuck { generation });
                }
                self.schedule();
                return FrameOutcome::Missing;
            };
            if meta.generation != generation {
                continue;
            }
            match meta.kind {
                FrameKind::Audio => {
                    self.missing = 0;
                    a.position_ms.store(meta.end_position_ms, Ordering::Release);
                    a.counters.sent.fetch_add(1, Ordering::Relaxed);
                    self.schedule();
                    return FrameOutcome::Frame(meta.len);
                }
                FrameKind::End(kind) => {
                    self.missing = 0;
                    a.track_active.store(false, Ordering::Release);
                    let _ = a.signals.send(AudioSignal::Ended { generation, kind });
                    return FrameOutcome::Idle;
                }
            }
        }
    }
}

impl PlayerFrameSource {
    fn schedule(&self) {
        if !self.audio.queued.load(Ordering::Acquire) {
            self.audio.schedule();
        }
    }
}
