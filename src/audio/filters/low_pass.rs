//! lowPass: a one-pole smoother per channel. Each output moves a fraction `1/smoothing` of the
//! way from its previous value towards the new input sample (`v += (x - v) / smoothing`), so the
//! larger the smoothing, the lower the corner frequency (about `fs / (2π·smoothing)`). The state
//! starts at the first sample seen after creation or a reset, so the filter never ramps up from
//! silence.
//!
//! Active when `smoothing > 1`; 1 or less would be identity or unstable, and counts as off.

use super::InPlace;
use crate::protocol::filters::LowPass as Config;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    /// `1 / smoothing`, in (0, 1).
    factor: f32,
}

pub(super) fn params(cfg: &Option<Config>) -> Option<Params> {
    let s = cfg.as_ref()?.smoothing;
    // `s > 1.0` is false for NaN; +inf gives factor 0, a filter stuck at its first sample,
    // which is what an infinitely smooth filter is.
    (s > 1.0).then(|| Params { factor: 1.0 / s })
}

#[derive(Debug)]
pub(super) struct LowPass {
    factor: f32,
    state: [f32; 2],
    primed: bool,
}

impl InPlace for LowPass {
    type Params = Params;

    fn new(p: &Params) -> Self {
        LowPass {
            factor: p.factor,
            state: [0.0; 2],
            primed: false,
        }
    }

    fn set(&mut self, p: &Params) {
        self.factor = p.factor;
    }

    fn reset(&mut self) {
        self.primed = false;
    }

    fn process(&mut self, buf: &mut [f32]) {
        if buf.len() < 2 {
            return;
        }
        if !self.primed {
            self.state = [buf[0], buf[1]];
            self.primed = true;
        }
        // v[n] = a·v[n−1] + k·x[n] with a = 1 − k, taken two frames at a time:
        // v[n+1] = a²·v[n−1] + (a·k·x[n] + k·x[n+1]). Only one multiply-add per two frames then
        // waits for the previous result (a one-pole filter is otherwise bound by that wait);
        // v[n] itself is computed beside it.
        let k = self.factor;
        let a = 1.0 - k;
        let (a2, ak) = (a * a, a * k);
        let [mut l, mut r] = self.state;
        let mut pairs = buf.chunks_exact_mut(4);
        for f in &mut pairs {
            let (l0, r0) = (a * l + k * f[0], a * r + k * f[1]);
            (l, r) = (
                a2 * l + (ak * f[0] + k * f[2]),
                a2 * r + (ak * f[1] + k * f[3]),
            );
            f.copy_from_slice(&[l0, r0, l, r]);
        }
        if let [x, y] = pairs.into_remainder() {
            (l, r) = (a * l + k * *x, a * r + k * *y);
            (*x, *y) = (l, r);
        }
        self.state = [l, r];
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;

    #[test]
    fn attenuates_high_frequencies_and_keeps_low_ones() {
        let f = filters(r#"{"lowPass":{"smoothing":20}}"#);
        let low = sine(100.0, 0.5, 1.0);
        let high = sine(5000.0, 0.5, 1.0);
        let low_out = run(&f, &low);
        let high_out = run(&f, &high);
        let skip = 4800; // let the filter settle
        let low_db = gain_db(&left(&low)[skip..], &left(&low_out)[skip..]);
        let high_db = gain_db(&left(&high)[skip..], &left(&high_out)[skip..]);
        assert!(low_db > -1.0, "100 Hz changed by {low_db} dB");
        assert!(high_db < -18.0, "5 kHz changed by only {high_db} dB");
    }

    #[test]
    fn smoothing_one_or_less_is_off() {
        assert!(!chain(r#"{"lowPass":{"smoothing":1}}"#).is_active());
        assert!(!chain(r#"{"lowPass":{"smoothing":0}}"#).is_active());
        assert!(chain(r#"{"lowPass":{}}"#).is_active());
    }

    #[test]
    fn starts_at_the_first_sample_instead_of_ramping_from_zero() {
        let f = filters(r#"{"lowPass":{"smoothing":1000}}"#);
        let dc = vec![0.5f32; 2 * 480];
        let out = run(&f, &dc);
        assert!(out.iter().all(|&v| (v - 0.5).abs() < 1e-6));
    }
}
