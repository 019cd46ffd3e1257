//! channelMix: a 2×2 matrix on the stereo pair. `left' = leftToLeft·left + rightToLeft·right`,
//! `right' = leftToRight·left + rightToRight·right`, clamped to [-1, 1]. All four at 0.5 turns
//! the signal into mono; leftToRight = rightToLeft = 1 and the others 0 swaps the channels.
//!
//! Coefficients are clamped to their documented range [0, 1]. Active when any (clamped)
//! coefficient differs from the identity matrix. Changed coefficients glide over 10 ms.

use super::InPlace;
use super::glide::Glide;
use crate::protocol::filters::ChannelMix as Config;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    /// leftToLeft, rightToLeft, leftToRight, rightToRight.
    m: [f32; 4],
}

fn unit(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) }
}

pub(super) fn params(cfg: &Option<Config>) -> Option<Params> {
    let c = cfg.as_ref()?;
    let m = [
        unit(c.left_to_left),
        unit(c.right_to_left),
        unit(c.left_to_right),
        unit(c.right_to_right),
    ];
    (m != [1.0, 0.0, 0.0, 1.0]).then_some(Params { m })
}

#[derive(Debug)]
pub(super) struct ChannelMix {
    m: [Glide; 4],
}

impl InPlace for ChannelMix {
    type Params = Params;

    fn new(p: &Params) -> Self {
        ChannelMix {
            m: p.m.map(Glide::new),
        }
    }

    fn set(&mut self, p: &Params) {
        for (g, &v) in self.m.iter_mut().zip(&p.m) {
            g.set(v);
        }
    }

    fn reset(&mut self) {
        self.m.iter_mut().for_each(Glide::settle);
    }

    fn process(&mut self, buf: &mut [f32]) {
        let mut frames = buf.chunks_exact_mut(2);
        // While a change glides, advance the coefficients frame by frame...
        while self.m.iter().any(Glide::moving) {
            let Some(frame) = frames.next() else { return };
            let m = [0, 1, 2, 3].map(|i| self.m[i].next());
            mix(frame, m);
        }
        // ...then they are constant.
        let m = [0, 1, 2, 3].map(|i| self.m[i].value());
        frames.for_each(|frame| mix(frame, m));
    }
}

#[inline]
fn mix(frame: &mut [f32], [ll, rl, lr, rr]: [f32; 4]) {
    let (l, r) = (frame[0], frame[1]);
    frame[0] = (ll * l + rl * r).clamp(-1.0, 1.0);
    frame[1] = (lr * l + rr * r).clamp(-1.0, 1.0);
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;

    #[test]
    fn all_one_half_gives_identical_channels() {
        let input = stereo(|t| 0.5 * tone(440.0, t), |t| 0.3 * tone(1234.0, t), 0.5);
        let out = run(
            &filters(
                r#"{"channelMix":{"leftToLeft":0.5,"leftToRight":0.5,"rightToLeft":0.5,"rightToRight":0.5}}"#,
            ),
            &input,
        );
        assert_eq!(out.len(), input.len());
        assert!(out.chunks_exact(2).all(|f| f[0] == f[1]));
        assert!(rms(&left(&out)) > 0.1);
    }

    #[test]
    fn swaps_channels() {
        let input = stereo(|t| 0.5 * tone(440.0, t), |_| 0.0, 0.2);
        let out = run(
            &filters(
                r#"{"channelMix":{"leftToLeft":0,"leftToRight":1,"rightToLeft":1,"rightToRight":0}}"#,
            ),
            &input,
        );
        assert!(rms(&left(&out)) < 1e-6);
        assert!((rms(&right(&out)) - rms(&left(&input))).abs() < 1e-6);
    }

    #[test]
    fn identity_matrix_and_out_of_range_values_that_clamp_to_it_are_inactive() {
        assert!(!chain(r#"{"channelMix":{}}"#).is_active());
        assert!(!chain(r#"{"channelMix":{"leftToLeft":7,"rightToLeft":-3}}"#).is_active());
        assert!(chain(r#"{"channelMix":{"leftToRight":0.2}}"#).is_active());
    }
}
