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
/// Ring length (power of two, more than the largest delay plus the interpolation span).
const RING: usize = 256;
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
    ring: [[f32; RING]; 2],
    write: usize,
}

impl InPlace for Vibrato {
    type Params = Params;

    fn new(p: &Params) -> Self {
        Vibrato {
            p: *p,
            lfo: Lfo::new(p.step),
            ring: [[0.0; RING]; 2],
            write: 0,
        }
    }

    fn set(&mut self, p: &Params) {
        self.p = *p;
        self.lfo.set_step(p.step);
    }

    fn reset(&mut self) {
        self.ring = [[0.0; RING]; 2];
    }

    fn process(&mut self, buf: &mut [f32]) {
        let mask = RING - 1;
        for (frame, sin) in buf.chunks_exact_mut(2).zip(self.lfo.sines()) {
            let w = self.write;
            self.ring[0][w] = frame[0];
            self.ring[1][w] = frame[1];

            let u = 0.5 * (sin + 1.0);
            let delay = u * self.p.swing + BASE_DELAY;
            // `delay` is at least BASE_DELAY, so truncating is flooring (and needs no libm call).
            let whole = delay as usize;
            // Read position w - delay = (w - whole - 1) + t with t in (0, 1].
            let t = 1.0 - (delay - whole as f32);
            let i1 = (w + RING - whole - 1) & mask;
            let (i0, i2, i3) = ((i1 + mask) & mask, (i1 + 1) & mask, (i1 + 2) & mask);
            for (c, out) in frame.iter_mut().enumerate() {
                let r = &self.ring[c];
                *out = hermite(r[i0], r[i1], r[i2], r[i3], t).clamp(-1.0, 1.0);
            }
            self.write = (w + 1) & mask;
        }
        self.lfo.advance(buf.len() / 2);
    }
}

/// Catmull–Rom interpolation between `y1` (t = 0) and `y2` (t = 1).
#[inline]
fn hermite(y0: f32, y1: f32, y2: f32, y3: f32, t: f32) -> f32 {
    let c1 = 0.5 * (y2 - y0);
    let c2 = y0 - 2.5 * y1 + 2.0 * y2 - 0.5 * y3;
    let c3 = 0.5 * (y3 - y0) + 1.5 * (y1 - y2);
    ((c3 * t + c2) * t + c1) * t + y1
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;
    use super::hermite;

    #[test]
    fn hermite_passes_through_its_points_and_follows_a_line() {
        assert_eq!(hermite(0.0, 1.0, 2.0, 3.0, 0.0), 1.0);
        assert_eq!(hermite(0.0, 1.0, 2.0, 3.0, 1.0), 2.0);
        assert!((hermite(0.0, 1.0, 2.0, 3.0, 0.25) - 1.25).abs() < 1e-6);
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
