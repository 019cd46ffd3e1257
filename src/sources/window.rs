//! The byte window the streaming readers share (the HTTP reader, the HLS reader): a background
//! fetcher appends bytes to a bounded window ahead of the read position; `read` takes from it,
//! blocking (up to the read timeout) until bytes arrive; readiness and a notify callback tell
//! the audio engine when a read will not block. Moving the window elsewhere (a seek) is the
//! reader's business: it bumps `generation`, so fetchers of the old place stop.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Notify, Readiness, ReadinessHandle};

pub(crate) enum End {
    Open,
    Eof,
    Failed(io::ErrorKind, String),
}

pub(crate) struct State {
    /// Bytes `[buf_start, buf_start + buf.len())` of the stream.
    pub buf: VecDeque<u8>,
    pub buf_start: u64,
    /// The reader's position. `pos >= buf_start`; `pos` past the window means a forward skip is
    /// waiting for its bytes.
    pub pos: u64,
    /// Bumped whenever the window is thrown away; a fetcher of an older generation stops.
    pub generation: u64,
    pub end: End,
    /// The stream's length, if known.
    pub total_len: Option<u64>,
    /// Probing only: the window before the last far seek (start, bytes), for the seek back
    /// that usually follows (a look at the tail, then back to the head).
    pub stash: Option<(u64, VecDeque<u8>)>,
    /// A `read` is blocked waiting for bytes right now.
    pub reader_waiting: bool,
}

impl State {
    pub fn window_end(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    pub fn buffered(&self) -> usize {
        self.window_end().saturating_sub(self.pos) as usize
    }

    /// The reader sits at or past the known end (reads return EOF whatever the window holds).
    pub fn at_end(&self) -> bool {
        self.total_len.is_some_and(|len| self.pos >= len)
    }

    /// Whether the fetcher should fetch more to keep fewer than `below` bytes ahead.
    pub fn wants_more(&self, below: usize) -> bool {
        !self.at_end() && self.buffered() < below.max(1)
    }

    pub fn readiness(&self) -> Readiness {
        Readiness {
            buffered: self.buffered(),
            finished: self.at_end() || !matches!(self.end, End::Open),
        }
    }
}

pub(crate) struct Window {
    pub state: Mutex<State>,
    /// Signalled when bytes arrive or the stream ends (wakes `read`).
    data: Condvar,
    /// Signalled when the reader consumed or moved (wakes a fetcher waiting for room).
    pub room: tokio::sync::Notify,
    notify: Mutex<Option<Notify>>,
    /// At most this many bytes behind the read position are kept for cheap backward seeks.
    pub back_keep: usize,
    /// The most bytes kept ahead of the read position.
    pub read_ahead: usize,
}

impl Window {
    pub fn new(read_ahead: usize, back_keep: usize, total_len: Option<u64>) -> Arc<Window> {
        Arc::new(Window {
            state: Mutex::new(State {
                buf: VecDeque::new(),
                buf_start: 0,
                pos: 0,
                generation: 0,
                end: End::Open,
                total_len,
                stash: None,
                reader_waiting: false,
            }),
            data: Condvar::new(),
            room: tokio::sync::Notify::new(),
            notify: Mutex::new(None),
            back_keep,
            read_ahead: read_ahead.max(1),
        })
    }

    fn call_notify(&self) {
        let notify = self.notify.lock().clone();
        if let Some(notify) = notify {
            notify();
        }
    }

    pub fn set_notify(&self, notify: Notify) {
        *self.notify.lock() = Some(notify);
    }

    pub fn readiness(&self) -> Readiness {
        self.state.lock().readiness()
    }

    pub fn readiness_handle(self: &Arc<Self>) -> ReadinessHandle {
        let window = self.clone();
        ReadinessHandle::new(move || window.readiness())
    }

    /// Wakes whoever waits on the window after the reader moved it (a seek).
    pub fn moved(&self) {
        self.data.notify_all();
        self.room.notify_one();
        self.call_notify();
    }

    /// Appends from `bytes` what fits in the read-ahead, for a fetcher of `generation`: how
    /// many bytes were taken, or `None` when that fetcher is stale.
    pub fn append(&self, generation: u64, bytes: &[u8]) -> Option<usize> {
        let taken = {
            let mut st = self.state.lock();
            if st.generation != generation {
                return None;
            }
            let room = if st.at_end() {
                0
            } else {
                self.read_ahead.saturating_sub(st.buffered())
            };
            let taken = room.min(bytes.len());
            st.buf.extend(bytes[..taken].iter().copied());
            let keep_from = st.pos.saturating_sub(self.back_keep as u64);
            let excess = keep_from
                .saturating_sub(st.buf_start)
                .min(st.buf.len() as u64);
            st.buf.drain(..excess as usize);
            st.buf_start += excess;
            taken
        };
        if taken > 0 {
            self.data.notify_all();
            self.call_notify();
        }
        Some(taken)
    }

    /// Appends all of `bytes`, waiting for room as needed; false when the fetcher is stale.
    pub async fn append_all(&self, generation: u64, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if !self.wait_for_room(generation, self.read_ahead).await {
                return false;
            }
            let Some(taken) = self.append(generation, bytes) else {
                return false;
            };
            bytes = &bytes[taken..];
        }
        true
    }

    pub fn finish(&self, generation: u64, end: End) {
        {
            let mut st = self.state.lock();
            if st.generation != generation {
                return;
            }
            st.end = end;
        }
        self.data.notify_all();
        self.call_notify();
    }

    /// Waits until fewer than `below` bytes are buffered ahead of the reader; false when the
    /// fetcher is stale.
    pub async fn wait_for_room(&self, generation: u64, below: usize) -> bool {
        loop {
            // Registered before the check, so a wake-up between the two is not lost.
            let notified = self.room.notified();
            {
                let st = self.state.lock();
                if st.generation != generation {
                    return false;
                }
                if st.wants_more(below) {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Waits until a `read` is blocked for want of bytes; false when the fetcher is stale.
    /// (Probing fetches a range only then: a range fetched ahead could be made useless by the
    /// probe's next seek.)
    pub async fn wait_for_reader(&self, generation: u64) -> bool {
        loop {
            // Registered before the check, so a wake-up between the two is not lost.
            let notified = self.room.notified();
            {
                let st = self.state.lock();
                if st.generation != generation {
                    return false;
                }
                // The flag alone is not enough: bytes may have arrived that the woken reader
                // has not taken yet.
                if st.reader_waiting && st.buffered() == 0 && !st.at_end() {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Blocking read from the window at the reader's position, waiting at most `timeout` for
    /// bytes to arrive.
    pub fn read(&self, out: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock();
        loop {
            if st.at_end() {
                return Ok(0);
            }
            let available = st.buffered();
            if available > 0 && st.pos >= st.buf_start {
                let from = (st.pos - st.buf_start) as usize;
                let n = out.len().min(available);
                let (a, b) = st.buf.as_slices();
                if from + n <= a.len() {
                    out[..n].copy_from_slice(&a[from..from + n]);
                } else if from >= a.len() {
                    let from = from - a.len();
                    out[..n].copy_from_slice(&b[from..from + n]);
                } else {
                    let first = a.len() - from;
                    out[..first].copy_from_slice(&a[from..]);
                    out[first..n].copy_from_slice(&b[..n - first]);
                }
                st.pos += n as u64;
                drop(st);
                self.room.notify_one();
                return Ok(n);
            }
            match &st.end {
                End::Eof => return Ok(0),
                End::Failed(kind, message) => return Err(io::Error::new(*kind, message.clone())),
                End::Open => {}
            }
            st.reader_waiting = true;
            self.room.notify_one();
            let timed_out = self.data.wait_until(&mut st, deadline).timed_out();
            st.reader_waiting = false;
            if timed_out {
                // One last look: bytes may have come with the deadline.
                if st.buffered() == 0 && matches!(st.end, End::Open) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no data within {} ms", timeout.as_millis()),
                    ));
                }
            }
        }
    }
}
