//! karaoke: vocal removal by cancelling what both channels share. Each side loses the other side
//! scaled by `level` (`left' = left − right·level`, `right' = right − left·level`), which removes
//! centre-panned content (usually the voice) and keeps what is panned to one side. Because that
//! also removes the centred bass, a band around `filterBand` is taken from the mono sum
//! `(left + right)/2` with a two-pole resonator and added back to both sides, scaled by
//! `monoLevel·level`.
//!
//! The resonator, for centre `F` and bandwidth `W` at sample rate `fs`:
//! `C = e^(−2π·W/fs)`, `B = −4C/(1+C)·cos(2π·F/fs)`, `A = (1−C)·√(1 − B²/(4C))`, and
//! `y[n] = A·m[n] − B·y[n−1] − C·y[n−2]`; its peak gain is about 1 at `F`.
//!
//! Active whenever the object is set. `filterWidth` is clamped to [0, fs/2]. Changed levels glide
//! over 10 ms; the resonator state carries over a hot swap.

use std::f64::consts::TAU;

use super::glide::Glide;
use super::{InPlace, SAMPLE_RATE, clamp_unit};
use crate::protocol::filters::Karaoke as Config;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    level: f32,
    mono_gain: f32,
    a: f32,
    b: f32,
    c: f32,
}

pub(super) fn params(cfg: &Option<Config>) -> Option<Params> {
    let k = cfg.as_ref()?;
    let finite = |v: f32| if v.is_finite() { v } else { 0.0 };
    let level = finite(k.level);
    let width = (finite(k.filter_width) as f64).clamp(0.0, SAMPLE_RATE / 2.0);
    let band = finite(k.filter_band) as f64;
    let c = (-TAU * width / SAMPLE_RATE).exp();
    let b = -4.0 * c / (1.0 + c) * (TAU * band / SAMPLE_RATE).cos();
    let a = (1.0 - b * b / (4.0 * c)).max(0.0).sqrt() * (1.0 - c);
    Some(Params {
        level,
        mono_gain: clamp_gain(finite(k.mono_level) * level),
        a: a as f32,
        b: b as f32,
        c: c as f32,
    })
}

/// A gain product can overflow to infinity; keep it a (huge) finite number.
fn clamp_gain(g: f32) -> f32 {
    if g.is_finite() {
        g
    } else if g.is_nan() {
        0.0
    } else {
        g.signum() * f32::MAX
    }
}

#[derive(Debug)]
pub(super) struct Karaoke {
    level: Glide,
    mono_gain: Glide,
    a: f32,
    b: f32,
    c: f32,
    y1: f32,
    y2: f32,
}

impl InPlace for Karaoke {
    type Params = Params;

    fn new(p: &Params) -> Self {
        Karaoke {
            level: Glide::new(p.level),
            mono_gain: Glide::new(p.mono_gain),
            a: p.a,
            b: p.b,
            c: p.c,
            y1: 0.0,
            y2: 0.0,
        }
    }

    fn set(&mut self, p: &Params) {
        self.level.set(p.level);
        self.mono_gain.set(p.mono_gain);
        (self.a, self.b, self.c) = (p.a, p.b, p.c);
    }

    fn reset(&mut self) {
        self.level.settle();
        self.mono_gain.settle();
        self.y1 = 0.0;
        self.y2 = 0.0;
    }

    fn process(&mut self, buf: &mut [f32]) {
        let (a, b, c) = (self.a, self.b, self.c);
        let (mut y1, mut y2) = (self.y1, self.y2);
        let mut step = |frame: &mut [f32], level: f32, mono_gain: f32| {
            let (l, r) = (frame[0], frame[1]);
            // The terms known before the previous output first, so that only one
            // multiply-subtract waits for it.
            let known = a * 0.5 * (l + r) - c * y2;
            let y = known - b * y1;
            y2 = y1;
            y1 = y;
            let band = y * mono_gain;
            frame[0] = clamp_unit(l - r * level + band);
            frame[1] = clamp_unit(r - l * level + band);
        };
        if self.level.moving() || self.mono_gain.moving() {
            for frame in buf.chunks_exact_mut(2) {
                step(frame, self.level.next(), self.mono_gain.next());
            }
        } else {
            let (level, mono_gain) = (self.level.value(), self.mono_gain.value());
            for frame in buf.chunks_exact_mut(2) {
                step(frame, level, mono_gain);
            }
        }
        self.y1 = y1;
        self.y2 = y2;
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;

    #[test]
    fn removes_a_centre_panned_tone_and_keeps_a_side_panned_one() {
        let f = filters(r#"{"karaoke":{}}"#);
        let centre = sine(2000.0, 0.5, 0.5);
        let side = stereo(|t| 0.5 * tone(2000.0, t), |_| 0.0, 0.5);
        let centre_out = run(&f, &centre);
        let side_out = run(&f, &side);
        let skip = 2400;
        let centre_db = gain_db(&left(&centre)[skip..], &left(&centre_out)[skip..]);
        let side_db = gain_db(&left(&side)[skip..], &left(&side_out)[skip..]);
        assert!(centre_db < -20.0, "centre tone only {centre_db} dB down");
        assert!(side_db.abs() < 1.0, "side tone changed by {side_db} dB");
    }

    #[test]
    fn puts_back_the_filter_band_of_the_centre() {
        // A centred tone at filterBand survives: the resonator re-adds it.
        let f = filters(r#"{"karaoke":{"filterBand":220,"filterWidth":100}}"#);
        let centre = sine(220.0, 0.5, 1.0);
        let out = run(&f, &centre);
        let db = gain_db(&left(&centre)[9600..], &left(&out)[9600..]);
        assert!(db.abs() < 1.5, "band tone changed by {db} dB");
    }
}
