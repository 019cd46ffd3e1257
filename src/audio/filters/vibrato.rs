//! vibrato: periodic pitch wobble made with a modulated delay line. A sine LFO
//! `u = (sin φ + 1)/2`, `φ += 2π·frequency/fs`, sets the delay to `u·depth·96 + 3` samples (up to
//! 2 ms of swing); the output is the input read back at that fractional delay, interpolated
//! with a 4-point cubic Hermite (Catmull–Rom) curve. A delay that grows lowers the pitch and one
//! that shrinks raises it, so the pitch swings around the original `frequency` times a second.
//!
//! Active when `depth > 0` and `frequency > 0`. Depth is clamped to [0, 1], frequency to at most
//! 14 Hz. The delay line and LFO phase carry over a hot swap.

use std::f64::consts::TAU;

use super::lfo::Lfo;
use super::{InPlace, SAMPLE_RATE};
use crate::protocol::filters::Vibrato as Config;

/// Largest modulation swing: 2 ms at 48 kHz.
const MAX_SWING: f32 = 96.0;
/// Smallest delay: leaves the two newer interpolation points already written.
const BASE_DELAY: f32 = 3.0;
/// Frames of history kept in front of each chunk (more than the largest delay plus the
/// interpolation span).
const HISTORY: usize = 128;
/// Frames processed per chunk: the LFO, delays and interpolation weights of a chunk are
/// computed first (in SIMD lanes), then the delayed samples are read and weighted.
const CHUNK: usize = 256;
const MAX_FREQUENCY: f32 = 14.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    step: f64,
    swing: f32,
}

pub(super) fn params(cfg: &Option<Config>) -> Option<Params> {
    let v = cfg.as_ref()?;
    if !(v.depth > 0.0 && v.frequency > 0.0) {
        return None;
    }
    let depth = v.depth.min(1.0);
    let frequency = v.frequency.min(MAX_FREQUENCY) as f64;
    Some(Params {
        step: TAU * frequency / SAMPLE_RATE,
        swing: depth * MAX_SWING,
    })
}

#[derive(Debug)]
pub(super) struct Vibrato {
    p: Params,
    lfo: Lfo,
    /// Interleaved stereo frames: `HISTORY` frames of the past, then the chunk being read.
    line: [[f32; 2]; HISTORY + CHUNK],
}

/// Per frame of a chunk: where its four interpolation points start in the line, and their
/// weights (arrays by weight, so the loop computing them runs in SIMD lanes).
struct Taps {
    start: [i32; CHUNK],
    weights: [[f32; CHUNK]; 4],
}

impl Vibrato {
    /// The taps of the frames whose LFO values are `sines` (at most `CHUNK` of them).
    fn taps(&self, sines: &[f32], taps: &mut Taps) {
        let [w0, w1, w2, w3] = &mut taps.weights;
        for (n, &sin) in sines.iter().enumerate() {
            let u = 0.5 * (sin + 1.0);
            let delay = u * self.p.swing + BASE_DELAY;
            let whole = whole_part(delay);
            // Read position n - delay = (n - whole - 1) + t with t in [0, 1]; the points are
            // frames n - whole - 2 ..= n - whole + 1 after the history.
            let t = 1.0 - (delay - whole as f32);
            taps.start[n] = HISTORY as i32 + n as i32 - whole - 2;
            [w0[n], w1[n], w2[n], w3[n]] = catmull_rom_weights(t);
        }
    }
}

impl InPlace for Vibrato {
    type Params = Params;

    fn new(p: &Params) -> Self {
        Vibrato {
            p: *p,
            lfo: Lfo::new(p.step),
            line: [[0.0; 2]; HISTORY + CHUNK],
        }
    }

    fn set(&mut self, p: &Params) {
        self.p = *p;
        self.lfo.set_step(p.step);
    }

    fn reset(&mut self) {
        self.line.fill([0.0; 2]);
    }

    fn process(&mut self, buf: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX.
            unsafe { self.run_avx(buf) };
            return;
        }
        self.run(buf);
    }
}

impl Vibrato {
    /// [`Vibrato::run`] compiled for AVX (the taps of a chunk in twice the lanes).
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn run_avx(&mut self, buf: &mut [f32]) {
        self.run(buf);
    }

    #[inline(always)]
    fn run(&mut self, buf: &mut [f32]) {
        let mut sines = self.lfo.sines();
        let mut lfo = [0.0f32; CHUNK];
        let mut taps = Taps {
            start: [0; CHUNK],
            weights: [[0.0; CHUNK]; 4],
        };
        for chunk in buf.chunks_mut(2 * CHUNK) {
            let frames = chunk.len() / 2;
            for (dst, src) in self.line[HISTORY..].iter_mut().zip(chunk.chunks_exact(2)) {
                *dst = [src[0], src[1]];
            }
            sines.fill(&mut lfo[..frames]);
            self.taps(&lfo[..frames], &mut taps);
            let line = &self.line[..];
            let [w0, w1, w2, w3] = &taps.weights;
            for (n, out) in chunk.chunks_exact_mut(2).enumerate() {
                let p = &line[taps.start[n] as usize..][..4];
                for c in 0..2 {
                    let y = w0[n] * p[0][c] + w1[n] * p[1][c] + w2[n] * p[2][c] + w3[n] * p[3][c];
                    out[c] = y.clamp(-1.0, 1.0);
                }
            }
            self.line.copy_within(frames..frames + HISTORY, 0);
        }
        self.lfo.advance(buf.len() / 2);
    }
}

/// `⌊delay⌋` for a delay in [BASE_DELAY, BASE_DELAY + MAX_SWING], or one less when `delay` is
/// a whole odd number (the interpolation then reads the same value at t = 0 instead of t = 1).
/// Float arithmetic and bit masks only: `as i32` must saturate, and that kept the compiler
/// from computing the taps in SIMD lanes. Adding 2²³ rounds to a whole number (half to even),
/// which then stands in the low mantissa bits; the clamp keeps the read inside the line
/// whatever the input.
#[inline(always)]
fn whole_part(delay: f32) -> i32 {
    const TWO_POW_23: f32 = 8_388_608.0;
    let rounded = (delay - 0.5 + TWO_POW_23).to_bits() & 0x7f_ffff;
    (rounded as i32).clamp(BASE_DELAY as i32 - 1, (BASE_DELAY + MAX_SWING) as i32)
}

/// Catmull–Rom interpolation weights of the points `y0, y1, y2, y3` for the position `t`
/// between `y1` (t = 0) and `y2` (t = 1): the cubic through `y1` and `y2` whose slopes there are
/// `(y2 − y0)/2` and `(y3 − y1)/2`. The weights sum to 1.
#[inline(always)]
fn catmull_rom_weights(t: f32) -> [f32; 4] {
    let t2 = t * t;
    let t3 = t2 * t;
    [
        -0.5 * t + t2 - 0.5 * t3,
        1.0 - 2.5 * t2 + 1.5 * t3,
        0.5 * t + 2.0 * t2 - 1.5 * t3,
        -0.5 * t2 + 0.5 * t3,
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;
    use super::{BASE_DELAY, MAX_SWING, catmull_rom_weights, whole_part};

    #[test]
    fn whole_part_floors_or_lands_on_a_point() {
        for i in 0..=(MAX_SWING as u32 * 64) {
            let delay = BASE_DELAY + i as f32 / 64.0;
            let whole = whole_part(delay);
            let t = 1.0 - (delay - whole as f32);
            assert!((0.0..=1.0).contains(&t), "{delay}: whole {whole}, t {t}");
            if delay.fract() != 0.0 {
                assert_eq!(whole, delay.floor() as i32, "{delay}");
            }
        }
        // Whatever comes in, the read stays inside the line.
        for delay in [f32::NAN, -1e9, 1e9, f32::INFINITY] {
            let whole = whole_part(delay);
            assert!((2..=99).contains(&whole), "{delay}: {whole}");
        }
    }

    fn interpolate(y: [f32; 4], t: f32) -> f32 {
        let w = catmull_rom_weights(t);
        (0..4).map(|k| w[k] * y[k]).sum()
    }

    #[test]
    fn interpolation_passes_through_its_points_and_follows_a_line() {
        assert_eq!(interpolate([0.0, 1.0, 2.0, 3.0], 0.0), 1.0);
        assert_eq!(interpolate([0.0, 1.0, 2.0, 3.0], 1.0), 2.0);
        assert!((interpolate([0.0, 1.0, 2.0, 3.0], 0.25) - 1.25).abs() < 1e-6);
        // Catmull–Rom reproduces a parabola: (x − 2)² at x = 0..3, read at x = 1.5.
        let mid = interpolate([4.0, 1.0, 0.0, 1.0], 0.5);
        assert!((mid - 0.25).abs() < 1e-6, "{mid}");
    }

    #[test]
    fn pitch_wobbles_at_the_given_frequency() {
        let secs = 3.0;
        let input = sine(1000.0, 0.5, secs);
        let out = run(&filters(r#"{"vibrato":{"frequency":5,"depth":1}}"#), &input);
        // Instantaneous frequency, one estimate per 10 ms.
        let freq = frequency_track(&left(&out)[4800..], 480);
        let (lo, hi) = min_max(&freq);
        // Delay swing 96 samples at 5 Hz: about ±3 % of 1 kHz.
        assert!(lo < 985.0 && hi > 1015.0, "{lo} .. {hi}");
        assert!(lo > 940.0 && hi < 1060.0, "{lo} .. {hi}");
        // Five cycles a second: ten mean crossings a second.
        let crossings = mean_crossings(&freq) as f64 / (secs - 0.1);
        assert!((crossings - 10.0).abs() < 1.5, "{crossings} crossings/s");
        // Unlike tremolo, the level stays put.
        let env = envelope(&left(&out)[4800..], 960);
        let (elo, ehi) = min_max(&env);
        assert!(elo > 0.95 * ehi);
    }

    #[test]
    fn off_without_depth_or_frequency() {
        assert!(!chain(r#"{"vibrato":{"depth":0}}"#).is_active());
        assert!(!chain(r#"{"vibrato":{"frequency":0}}"#).is_active());
        assert!(chain(r#"{"vibrato":{}}"#).is_active());
    }
}
