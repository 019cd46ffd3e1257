//! volume (the filter, not the player volume): a gain with Lavalink's loudness curve. For a
//! setting `v` in [0, 5] the multiplier is `tan(0.79·v)` up to `v = 1.5` and the straight line
//! `1.6408·v` above it (the two meet at 1.5), then the result is clamped to [-1, 1]. So 1.0 is
//! (almost exactly) unity, 0.5 is about −7.6 dB and 2.0 about +10.3 dB. Settings within 0.02 of
//! 1.0 are applied as exact unity, as in the reference.
//!
//! Active when `v ≠ 1`; values outside [0, 5] are clamped. A changed gain glides over 10 ms.

use super::glide::Glide;
use super::{InPlace, clamp_unit};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    gain: f32,
}

/// The multiplier for filter volume `v` (spec curve, v already in [0, 5]).
pub(super) fn curve(v: f32) -> f32 {
    if (1.0 - v).abs() < 0.02 {
        1.0
    } else if v <= 1.5 {
        (0.79 * v as f64).tan() as f32
    } else {
        1.6408 * v
    }
}

pub(super) fn params(cfg: Option<f32>) -> Option<Params> {
    let v = cfg?;
    if v == 1.0 || v.is_nan() {
        return None;
    }
    Some(Params {
        gain: curve(v.clamp(0.0, 5.0)),
    })
}

#[derive(Debug)]
pub(super) struct Volume {
    gain: Glide,
}

impl InPlace for Volume {
    type Params = Params;

    fn new(p: &Params) -> Self {
        Volume {
            gain: Glide::new(p.gain),
        }
    }

    fn set(&mut self, p: &Params) {
        self.gain.set(p.gain);
    }

    fn reset(&mut self) {
        self.gain.settle();
    }

    fn process(&mut self, buf: &mut [f32]) {
        let mut frames = buf.chunks_exact_mut(2);
        while self.gain.moving() {
            let Some(frame) = frames.next() else { return };
            let g = self.gain.next();
            frame.iter_mut().for_each(|s| *s = clamp_unit(*s * g));
        }
        let g = self.gain.value();
        frames.for_each(|frame| frame.iter_mut().for_each(|s| *s = clamp_unit(*s * g)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;
    use super::curve;

    #[test]
    fn half_volume_follows_the_tan_curve() {
        let input = sine(1000.0, 0.5, 0.5);
        let out = run(&filters(r#"{"volume":0.5}"#), &input);
        let measured = gain_db(&left(&input), &left(&out));
        let expected = 20.0 * ((0.79f64 * 0.5).tan()).log10();
        assert!((expected + 7.6).abs() < 0.05, "formula gives {expected}");
        assert!(
            (measured - expected).abs() < 0.01,
            "{measured} dB vs {expected} dB"
        );
    }

    #[test]
    fn curve_is_continuous_at_one_and_a_half_and_unity_near_one() {
        assert!((curve(1.5) - curve(1.5001)).abs() < 1e-3);
        assert_eq!(curve(1.01), 1.0);
        assert_eq!(curve(0.0), 0.0);
        assert!((curve(5.0) - 8.204).abs() < 1e-3);
    }

    #[test]
    fn loud_settings_clamp_instead_of_overflowing() {
        let input = sine(1000.0, 0.9, 0.1);
        let out = run(&filters(r#"{"volume":5.0}"#), &input);
        let peak = out.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(peak, 1.0);
        assert!(!chain(r#"{"volume":1.0}"#).is_active());
        assert!(chain(r#"{"volume":0.0}"#).is_active());
    }
}
