//! A first-in first-out buffer of interleaved stereo `f32` samples, reused for the life of a
//! track: the glue between decoder, resampler, filters and encoder, which all work in chunks of
//! different sizes.
//!
//! Reads take from the front, writes append at the back; consumed space at the front is
//! reclaimed by moving the live samples down when the back runs out of room, so once the
//! capacity has grown to the largest chunk a track needs, nothing allocates.

/// Interleaved stereo samples (`L R L R …`); all counts are in frames (sample pairs).
#[derive(Debug, Default)]
pub(crate) struct StereoFifo {
    buf: Vec<f32>,
    start: usize,
}

impl StereoFifo {
    pub(crate) fn with_capacity(frames: usize) -> Self {
        StereoFifo {
            buf: Vec::with_capacity(frames * 2),
            start: 0,
        }
    }

    /// Frames waiting to be read.
    pub(crate) fn frames(&self) -> usize {
        (self.buf.len() - self.start) / 2
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.len() == self.start
    }

    /// The waiting samples, interleaved.
    pub(crate) fn samples(&self) -> &[f32] {
        &self.buf[self.start..]
    }

    /// The first `frames` waiting frames, interleaved (panics if fewer are waiting).
    pub(crate) fn head(&self, frames: usize) -> &[f32] {
        &self.buf[self.start..self.start + frames * 2]
    }

    /// Drops `frames` frames from the front (at most what is waiting).
    pub(crate) fn consume(&mut self, frames: usize) {
        self.start = (self.start + frames * 2).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Appends `samples` (interleaved stereo).
    pub(crate) fn push(&mut self, samples: &[f32]) {
        debug_assert!(samples.len().is_multiple_of(2));
        self.make_room(samples.len());
        self.buf.extend_from_slice(samples);
    }

    /// Appends `frames` frames of silence.
    pub(crate) fn push_silence(&mut self, frames: usize) {
        self.tail_mut(frames);
    }

    /// Appends `frames` frames of silence and returns them for the caller to overwrite.
    pub(crate) fn tail_mut(&mut self, frames: usize) -> &mut [f32] {
        let n = frames * 2;
        self.make_room(n);
        let old = self.buf.len();
        self.buf.resize(old + n, 0.0);
        &mut self.buf[old..]
    }

    /// Puts `samples` in front of the waiting ones (rare: used when a stage is bypassed and its
    /// leftovers must play first).
    pub(crate) fn prepend(&mut self, samples: &[f32]) {
        debug_assert!(samples.len().is_multiple_of(2));
        if samples.is_empty() {
            return;
        }
        if self.start >= samples.len() {
            self.start -= samples.len();
            self.buf[self.start..self.start + samples.len()].copy_from_slice(samples);
            return;
        }
        let live = self.buf.len() - self.start;
        let need = samples.len().max(self.start) + live;
        if need > self.buf.len() {
            self.buf.resize(need, 0.0);
        }
        self.buf
            .copy_within(self.start..self.start + live, samples.len());
        self.buf[..samples.len()].copy_from_slice(samples);
        self.buf.truncate(samples.len() + live);
        self.start = 0;
    }

    /// Ensures `extra` more samples fit without reallocating when possible, by moving the live
    /// samples to the front.
    fn make_room(&mut self, extra: usize) {
        if self.start > 0 && self.buf.len() + extra > self.buf.capacity() {
            let live = self.buf.len() - self.start;
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(live);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_consume_and_reuse_without_growing() {
        let mut f = StereoFifo::with_capacity(4);
        let cap = f.buf.capacity();
        f.push(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(f.frames(), 3);
        f.consume(2);
        assert_eq!(f.samples(), &[5.0, 6.0]);
        f.push(&[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
        assert_eq!(f.samples(), &[5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
        assert_eq!(f.buf.capacity(), cap, "moved down instead of growing");
        f.consume(10);
        assert!(f.is_empty());
    }

    #[test]
    fn tail_silence_and_prepend() {
        let mut f = StereoFifo::with_capacity(8);
        f.push_silence(1);
        f.tail_mut(1).copy_from_slice(&[1.0, 2.0]);
        assert_eq!(f.samples(), &[0.0, 0.0, 1.0, 2.0]);
        f.consume(2);
        f.push(&[3.0, 4.0]);
        f.prepend(&[5.0, 6.0, 7.0, 8.0]);
        assert_eq!(f.samples(), &[5.0, 6.0, 7.0, 8.0, 3.0, 4.0]);
        f.consume(1);
        f.prepend(&[9.0, 9.5]);
        assert_eq!(f.head(2), &[9.0, 9.5, 7.0, 8.0]);
    }
}
