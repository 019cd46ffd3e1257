//! The sine oscillator behind tremolo, vibrato and rotation: `sin φ`, `φ += step` per frame.
//!
//! Within one `process` call the sine comes from rotating unit phasors (`sin` and `cos` of the
//! step, four multiplications per frame; sixteen phasors a frame apart take turns, so that each
//! frame need not wait for the previous one's arithmetic) instead of calling `sin` for every
//! frame, which cost more than the filters' own arithmetic. The phase itself is kept as an
//! angle and advanced once per call, so rounding in the phasor never builds up beyond one call
//! (in f64 it stays below 1e-12 there).

use std::f64::consts::TAU;

#[derive(Debug, Clone, Copy)]
pub(super) struct Lfo {
    /// Radians, in [0, 2π).
    phase: f64,
    /// Radians per frame.
    step: f64,
}

impl Lfo {
    pub(super) fn new(step: f64) -> Self {
        Lfo { phase: 0.0, step }
    }

    /// A new frequency from the next frame on; the phase carries over.
    pub(super) fn set_step(&mut self, step: f64) {
        self.step = step;
    }

    /// `sin φ` for this frame and each following one; the oscillator itself does not move
    /// until `advance`.
    pub(super) fn sines(&self) -> Sines {
        // Lane k starts at phase + k·step; every lane then moves on by LANES steps at a time.
        // The first SEEDS lanes come from the library; each further one is the lane SEEDS
        // before it rotated by SEEDS steps (so only a few library calls per `process`).
        let mut sin = [0.0; LANES];
        let mut cos = [0.0; LANES];
        for k in 0..SEEDS {
            (sin[k], cos[k]) = (self.phase + k as f64 * self.step).sin_cos();
        }
        let (seed_sin, seed_cos) = (SEEDS as f64 * self.step).sin_cos();
        for k in SEEDS..LANES {
            let (s, c) = (sin[k - SEEDS], cos[k - SEEDS]);
            sin[k] = s * seed_cos + c * seed_sin;
            cos[k] = c * seed_cos - s * seed_sin;
        }
        let (step_sin, step_cos) = (LANES as f64 * self.step).sin_cos();
        Sines {
            sin,
            cos,
            step_sin,
            step_cos,
            next: 0,
        }
    }

    /// Calls `f` on each stereo frame of `buf` with that frame's `sin φ`, and moves the
    /// oscillator past `buf`. The values come a block at a time, so the loop over a block has
    /// no branch per frame and runs in SIMD lanes.
    #[inline(always)]
    pub(super) fn modulate(&mut self, buf: &mut [f32], mut f: impl FnMut(&mut [f32], f32)) {
        let mut sines = self.sines();
        let mut block = [0.0f32; BLOCK];
        for chunk in buf.chunks_mut(2 * BLOCK) {
            let values = &mut block[..chunk.len() / 2];
            sines.fill(values);
            for (frame, &sin) in chunk.chunks_exact_mut(2).zip(values.iter()) {
                f(frame, sin);
            }
        }
        self.advance(buf.len() / 2);
    }

    pub(super) fn advance(&mut self, frames: usize) {
        self.phase = (self.phase + frames as f64 * self.step).rem_euclid(TAU);
    }
}

/// Frames per block of values in [`Lfo::modulate`].
const BLOCK: usize = 256;

/// Independent phasors, interleaved: one rotation of each yields `LANES` frames, and the
/// rotations do not wait on each other (one phasor would make every frame wait for the
/// previous frame's multiplications). Sixteen f64 lanes are four AVX registers: enough
/// independent rotations to hide the multiply-add latency.
const LANES: usize = 16;

/// Lanes whose starting values come from the library (see [`Lfo::sines`]).
const SEEDS: usize = 4;

/// `sin` of successive frames' phases, from the phase at the call's start.
pub(super) struct Sines {
    sin: [f64; LANES],
    cos: [f64; LANES],
    /// Sine and cosine of `LANES` steps.
    step_sin: f64,
    step_cos: f64,
    /// The lane to yield next.
    next: usize,
}

impl Sines {
    /// Moves every lane on by `LANES` steps.
    #[inline(always)]
    fn rotate(&mut self) {
        for k in 0..LANES {
            let (sin, cos) = (self.sin[k], self.cos[k]);
            self.sin[k] = sin * self.step_cos + cos * self.step_sin;
            self.cos[k] = cos * self.step_cos - sin * self.step_sin;
        }
    }

    /// The next `out.len()` values, as that many calls of `next` would give them, a whole
    /// rotation at a time (so the loop has no branch per value and runs in SIMD lanes: AVX
    /// registers where the CPU has them, with the same operations, so the same values, as
    /// without).
    pub(super) fn fill(&mut self, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX.
            unsafe { self.fill_avx(out) };
            return;
        }
        self.fill_portable(out);
    }

    /// [`Sines::fill`] compiled for AVX.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn fill_avx(&mut self, out: &mut [f32]) {
        self.fill_portable(out);
    }

    #[inline(always)]
    fn fill_portable(&mut self, out: &mut [f32]) {
        let ahead = (LANES - self.next).min(out.len());
        let (head, rest) = out.split_at_mut(ahead);
        for v in head {
            *v = self.sin[self.next] as f32;
            self.next += 1;
        }
        let mut groups = rest.chunks_exact_mut(LANES);
        for group in &mut groups {
            self.rotate();
            for (v, &sin) in group.iter_mut().zip(&self.sin) {
                *v = sin as f32;
            }
        }
        for (v, s) in groups.into_remainder().iter_mut().zip(self) {
            *v = s;
        }
    }
}

impl Iterator for Sines {
    type Item = f32;

    #[inline]
    fn next(&mut self) -> Option<f32> {
        if self.next == LANES {
            self.rotate();
            self.next = 0;
        }
        let v = self.sin[self.next];
        self.next += 1;
        Some(v as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sin_over_many_calls() {
        let step = TAU * 3.7 / 48_000.0;
        let mut lfo = Lfo::new(step);
        let mut frame = 0u64;
        let mut worst = 0.0f64;
        for _ in 0..500 {
            for s in lfo.sines().take(960) {
                let exact = (frame as f64 * step).sin();
                worst = worst.max((s as f64 - exact).abs());
                frame += 1;
            }
            lfo.advance(960);
        }
        assert!(worst < 1e-6, "off by {worst}");
    }

    #[test]
    fn fill_gives_what_next_gives() {
        let lfo = Lfo::new(TAU * 5.3 / 48_000.0);
        let one_by_one: Vec<f32> = lfo.sines().take(1000).collect();
        let mut sines = lfo.sines();
        let mut bulk = vec![0.0; 1000];
        // Pieces that start and end inside a rotation as well as on its boundaries.
        let mut at = 0;
        for len in [3, 1, 8, 0, 13, 256, 2, 717] {
            sines.fill(&mut bulk[at..at + len]);
            at += len;
        }
        assert_eq!(at, 1000);
        assert_eq!(bulk, one_by_one);
    }
}
