//! tremolo: periodic loudness wobble. The signal is multiplied by `(1 − d) + d·sin φ` with
//! `d = depth/2` and `φ += 2π·frequency/fs`, so the gain swings between `1 − depth` and 1,
//! `frequency` times a second.
//!
//! Active when `depth > 0` and `frequency > 0`; depth is clamped to [0, 1]. The LFO phase carries
//! over a hot swap and a changed depth glides over 10 ms.

use std::f64::consts::TAU;

use super::glide::Glide;
use super::lfo::Lfo;
use super::{InPlace, SAMPLE_RATE};
use crate::protocol::filters::Tremolo as Config;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    step: f64,
    half_depth: f32,
}

pub(super) fn params(cfg: &Option<Config>) -> Option<Params> {
    let t = cfg.as_ref()?;
    if !(t.depth > 0.0 && t.frequency > 0.0 && t.frequency.is_finite()) {
        return None;
    }
    let depth = t.depth.min(1.0);
    Some(Params {
        step: (TAU * t.frequency as f64 / SAMPLE_RATE).rem_euclid(TAU),
        half_depth: depth / 2.0,
    })
}

#[derive(Debug)]
pub(super) struct Tremolo {
    lfo: Lfo,
    half_depth: Glide,
}

impl InPlace for Tremolo {
    type Params = Params;

    fn new(p: &Params) -> Self {
        Tremolo {
            lfo: Lfo::new(p.step),
            half_depth: Glide::new(p.half_depth),
        }
    }

    fn set(&mut self, p: &Params) {
        self.lfo.set_step(p.step);
        self.half_depth.set(p.half_depth);
    }

    fn reset(&mut self) {
        self.half_depth.settle();
    }

    fn process(&mut self, buf: &mut [f32]) {
        let apply = |frame: &mut [f32], d: f32, sin: f32| {
            let gain = (1.0 - d) + d * sin;
            frame[0] *= gain;
            frame[1] *= gain;
        };
        if self.half_depth.moving() {
            let depth = &mut self.half_depth;
            self.lfo
                .modulate(buf, |frame, sin| apply(frame, depth.next(), sin));
        } else {
            let d = self.half_depth.value();
            self.lfo.modulate(buf, |frame, sin| apply(frame, d, sin));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;

    #[test]
    fn level_wobbles_at_the_given_frequency_and_depth() {
        let secs = 2.0;
        let input = sine(1000.0, 0.5, secs);
        let out = run(
            &filters(r#"{"tremolo":{"frequency":4,"depth":0.6}}"#),
            &input,
        );
        let env = envelope(&left(&out), 240);
        let (lo, hi) = min_max(&env);
        let ref_level = rms(&left(&input));
        // Gain between 1 - depth and 1.
        assert!(
            (hi / ref_level - 1.0).abs() < 0.03,
            "max {}",
            hi / ref_level
        );
        assert!(
            (lo / ref_level - 0.4).abs() < 0.03,
            "min {}",
            lo / ref_level
        );
        // Four cycles a second: eight mean crossings a second.
        let crossings = mean_crossings(&env) as f64 / secs;
        assert!((crossings - 8.0).abs() < 1.0, "{crossings} crossings/s");
        // Both channels get the same gain.
        assert!(max_abs_diff(&left(&out), &right(&out)) == 0.0);
    }

    #[test]
    fn off_without_depth_or_frequency() {
        assert!(!chain(r#"{"tremolo":{"depth":0}}"#).is_active());
        assert!(!chain(r#"{"tremolo":{"frequency":-1}}"#).is_active());
        assert!(chain(r#"{"tremolo":{}}"#).is_active());
    }
}
