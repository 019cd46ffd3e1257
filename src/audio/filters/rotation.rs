//! rotation ("8D audio"): an auto-panner. A low-frequency sine `s = sin φ` sweeps the sound from
//! one side to the other: `left' = left·(1+s)/2`, `right' = right·(1−s)/2`, with the phase
//! advancing by `2π·rotationHz/fs` per frame, so one full left–right–left cycle takes
//! `1/rotationHz` seconds.
//!
//! Active when `rotationHz ≠ 0`. The phase carries over a hot swap, so changing the speed does
//! not jump the panning position.

use std::f64::consts::TAU;

use super::lfo::Lfo;
use super::{InPlace, SAMPLE_RATE};
use crate::protocol::filters::Rotation as Config;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    /// Phase increment per frame, radians, in [0, 2π).
    step: f64,
}

pub(super) fn params(cfg: &Option<Config>) -> Option<Params> {
    let hz = cfg.as_ref()?.rotation_hz;
    if hz == 0.0 || !hz.is_finite() {
        return None;
    }
    Some(Params {
        step: (TAU * hz / SAMPLE_RATE).rem_euclid(TAU),
    })
}

#[derive(Debug)]
pub(super) struct Rotation {
    lfo: Lfo,
}

impl InPlace for Rotation {
    type Params = Params;

    fn new(p: &Params) -> Self {
        Rotation {
            lfo: Lfo::new(p.step),
        }
    }

    fn set(&mut self, p: &Params) {
        self.lfo.set_step(p.step);
    }

    fn reset(&mut self) {}

    fn process(&mut self, buf: &mut [f32]) {
        self.lfo.modulate(buf, |frame, s| {
            frame[0] *= 0.5 * (1.0 + s);
            frame[1] *= 0.5 * (1.0 - s);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;

    #[test]
    fn moves_energy_between_channels_at_rotation_hz() {
        let secs = 4.0;
        let input = sine(1000.0, 0.5, secs);
        let out = run(&filters(r#"{"rotation":{"rotationHz":0.5}}"#), &input);
        let (l, r) = (envelope(&left(&out), 480), envelope(&right(&out), 480));
        // One cycle every 2 s: the left envelope crosses its mean twice per cycle.
        let crossings = mean_crossings(&l);
        assert!((3..=5).contains(&crossings), "{crossings} crossings");
        // Full swing: each side goes from near silence to near full level...
        let (lmin, lmax) = min_max(&l);
        assert!(lmin < 0.05 * lmax && lmax > 0.3, "{lmin} .. {lmax}");
        // ...and the two sides move in opposition.
        assert!(correlation(&l, &r) < -0.9);
    }

    #[test]
    fn zero_is_off() {
        assert!(!chain(r#"{"rotation":{"rotationHz":0}}"#).is_active());
        assert!(chain(r#"{"rotation":{"rotationHz":-0.2}}"#).is_active());
    }
}
