//! The audio worker pool: a fixed set of threads (one per core by default) that fill players'
//! frame rings. Never tokio's async workers; a player whose source has no bytes yet is skipped
//! (its reader re-schedules it), so a stalled source never holds a worker.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::mpsc::UnboundedSender;

use super::pipeline::PipelineSettings;
use super::player_audio::{AudioSignal, PlayerAudio};
use crate::voice::MAX_OPUS_PACKET;

/// Capacity of the work queue (each player is queued at most once at a time).
const QUEUE_CAPACITY: usize = 1 << 16;

/// The pool. Cheap to share.
pub struct AudioEngine {
    queue: Sender<Arc<PlayerAudio>>,
    pub settings: PipelineSettings,
    workers: usize,
}

impl AudioEngine {
    /// Starts `workers` threads (0 = one per available core).
    pub fn new(workers: usize, settings: PipelineSettings) -> Arc<Self> {
        let workers = if workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            workers
        };
        let (tx, rx) = crossbeam_channel::bounded::<Arc<PlayerAudio>>(QUEUE_CAPACITY);
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("audio-worker-{i}"))
                .spawn(move || worker(rx))
                .expect("spawning an audio worker thread");
        }
        Arc::new(AudioEngine {
            queue: tx,
            settings,
            workers,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Creates the audio state of a new player.
    pub fn new_player(
        &self,
        signals: UnboundedSender<AudioSignal>,
        stuck_threshold_ms: u64,
    ) -> Arc<PlayerAudio> {
        let queue = self.queue.clone();
        PlayerAudio::new(
            signals,
            stuck_threshold_ms,
            Arc::new(move |job: Arc<PlayerAudio>| match queue.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                    // Cannot happen with one entry per player under the capacity; leave the job
                    // unqueued so the next request retries.
                    job.queued.store(false, Ordering::Release);
                }
            }),
        )
    }
}

fn worker(rx: Receiver<Arc<PlayerAudio>>) {
    let mut scratch = Box::new([0u8; MAX_OPUS_PACKET]);
    while let Ok(job) = rx.recv() {
        job.queued.store(false, Ordering::Release);
        job.work(&mut scratch);
    }
}
