//! The short buffer of encoded 20 ms frames between a player's audio work and the pacer.
//!
//! A fixed array of slots allocated once per player. Audio workers push, the pacer pops, and the
//! player clears it on stop/seek. The lock is shared only by those three and held for one copy of
//! at most [`MAX_FRAME_BYTES`] bytes, never across I/O or codec work, so the pacer never waits on
//! anything a request handler holds.

use parking_lot::Mutex;

/// Largest payload a slot holds (an Opus packet; libopus caps a 20 ms packet at 1275 bytes,
/// multi-frame passthrough packets stay under this).
pub const MAX_FRAME_BYTES: usize = crate::voice::MAX_OPUS_PACKET;

/// Number of 20 ms frames buffered per player: ~120 ms, so pause, volume, filters and seek are
/// heard within about 100 ms.
pub const RING_FRAMES: usize = 6;

/// What a slot carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// An Opus packet of 20 ms of audio.
    Audio,
    /// The track ended after the frames before this one; nothing follows for this generation.
    End(EndKind),
}

/// How a track's audio ended, as the audio side sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    /// The source ran out, the end time was reached, or it ended after a mid-track error.
    Finished,
    /// It failed before producing any audio.
    LoadFailed,
}

/// One slot.
pub struct Frame {
    pub kind: FrameKind,
    /// The track generation (bumped on every new track and every seek) this frame belongs to.
    pub generation: u32,
    /// Source position in ms at the *end* of this frame.
    pub end_position_ms: i64,
    pub len: u16,
    pub data: [u8; MAX_FRAME_BYTES],
}

/// A popped frame's metadata (the payload is copied into the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    pub kind: FrameKind,
    pub generation: u32,
    pub end_position_ms: i64,
    pub len: usize,
}

struct RingState {
    slots: Box<[Frame]>,
    head: usize,
    len: usize,
}

/// The per-player frame buffer.
pub struct FrameRing {
    state: Mutex<RingState>,
}

impl Default for FrameRing {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameRing {
    pub fn new() -> Self {
        let slots = (0..RING_FRAMES)
            .map(|_| Frame {
                kind: FrameKind::Audio,
                generation: 0,
                end_position_ms: 0,
                len: 0,
                data: [0; MAX_FRAME_BYTES],
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        FrameRing {
            state: Mutex::new(RingState {
                slots,
                head: 0,
                len: 0,
            }),
        }
    }

    /// Free slots.
    pub fn free(&self) -> usize {
        RING_FRAMES - self.state.lock().len
    }

    /// Appends a frame; returns false (dropping nothing) when full or the payload is too large.
    pub fn push(
        &self,
        kind: FrameKind,
        generation: u32,
        end_position_ms: i64,
        payload: &[u8],
    ) -> bool {
        if payload.len() > MAX_FRAME_BYTES {
            return false;
        }
        let mut s = self.state.lock();
        if s.len == RING_FRAMES {
            return false;
        }
        let idx = (s.head + s.len) % RING_FRAMES;
        let slot = &mut s.slots[idx];
        slot.kind = kind;
        slot.generation = generation;
        slot.end_position_ms = end_position_ms;
        slot.len = payload.len() as u16;
        slot.data[..payload.len()].copy_from_slice(payload);
        s.len += 1;
        true
    }

    /// Pops the oldest frame, copying its payload into `out`.
    pub fn pop_into(&self, out: &mut [u8]) -> Option<FrameMeta> {
        let mut s = self.state.lock();
        if s.len == 0 {
            return None;
        }
        let head = s.head;
        let slot = &s.slots[head];
        let len = slot.len as usize;
        let n = len.min(out.len());
        out[..n].copy_from_slice(&slot.data[..n]);
        let meta = FrameMeta {
            kind: slot.kind,
            generation: slot.generation,
            end_position_ms: slot.end_position_ms,
            len: n,
        };
        s.head = (head + 1) % RING_FRAMES;
        s.len -= 1;
        Some(meta)
    }

    /// Drops every frame whose generation differs from `generation`.
    pub fn retain_generation(&self, generation: u32) {
        let mut s = self.state.lock();
        // Frames are in generation order, so stale ones are at the front.
        while s.len > 0 && s.slots[s.head].generation != generation {
            s.head = (s.head + 1) % RING_FRAMES;
            s.len -= 1;
        }
        // A newer generation never precedes an older one; anything left is current.
    }

    /// Drops everything.
    pub fn clear(&self) {
        let mut s = self.state.lock();
        s.head = 0;
        s.len = 0;
    }

    pub fn len(&self) -> usize {
        self.state.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_capacity() {
        let r = FrameRing::new();
        for i in 0..RING_FRAMES {
            assert!(r.push(FrameKind::Audio, 1, i as i64 * 20, &[i as u8; 3]));
        }
        assert!(!r.push(FrameKind::Audio, 1, 0, &[0]));
        let mut buf = [0u8; MAX_FRAME_BYTES];
        let m = r.pop_into(&mut buf).unwrap();
        assert_eq!((m.len, buf[0], m.end_position_ms), (3, 0, 0));
        assert_eq!(r.free(), 1);
    }

    #[test]
    fn stale_generations_dropped() {
        let r = FrameRing::new();
        r.push(FrameKind::Audio, 1, 20, &[1]);
        r.push(FrameKind::Audio, 1, 40, &[1]);
        r.push(FrameKind::Audio, 2, 1020, &[2]);
        r.retain_generation(2);
        let mut buf = [0u8; MAX_FRAME_BYTES];
        let m = r.pop_into(&mut buf).unwrap();
        assert_eq!(m.generation, 2);
        assert!(r.pop_into(&mut buf).is_none());
    }
}
