//! distortion: a waveshaper built from three trigonometric factors,
//! `y = offset + scale · (sinOffset + sin(x·sinScale)) · (cosOffset + cos(x·cosScale)) ·
//! (tanOffset + tan(x·tanScale))`, clamped to [-1, 1]. With every field at its default the
//! product is `sin x · cos x · tan x = sin² x`, which is not the identity: an all-default
//! distortion still colours the sound, as in the reference.
//!
//! Active when any field differs from its default. The arithmetic runs in f64: every factor of
//! f32-range inputs then stays finite (tan near its poles included), so the result is always a
//! number before the clamp.

use super::InPlace;
use crate::protocol::filters::Distortion as Config;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    sin_offset: f64,
    sin_scale: f64,
    cos_offset: f64,
    cos_scale: f64,
    tan_offset: f64,
    tan_scale: f64,
    offset: f64,
    scale: f64,
}

pub(super) fn params(cfg: &Option<Config>) -> Option<Params> {
    let d = cfg.as_ref()?;
    if *d == Config::default() {
        return None;
    }
    // Non-finite values never pass validation; should one get here, treat it as 0.
    let f = |v: f32| if v.is_finite() { v as f64 } else { 0.0 };
    Some(Params {
        sin_offset: f(d.sin_offset),
        sin_scale: f(d.sin_scale),
        cos_offset: f(d.cos_offset),
        cos_scale: f(d.cos_scale),
        tan_offset: f(d.tan_offset),
        tan_scale: f(d.tan_scale),
        offset: f(d.offset),
        scale: f(d.scale),
    })
}

#[derive(Debug)]
pub(super) struct Distortion {
    p: Params,
    /// All three scales are equal (as they are by default), so one angle serves every factor.
    one_angle: bool,
}

impl Distortion {
    #[inline]
    fn shape(&self, x: f32) -> f32 {
        let p = &self.p;
        let x = x as f64;
        let (sin, cos, tan);
        if self.one_angle {
            // sin, cos and tan of one angle: two library calls instead of three.
            let a = x * p.sin_scale;
            (sin, cos) = (a.sin(), a.cos());
            tan = sin / cos;
        } else {
            sin = (x * p.sin_scale).sin();
            cos = (x * p.cos_scale).cos();
            tan = (x * p.tan_scale).tan();
        }
        let y =
            p.offset + p.scale * (p.sin_offset + sin) * (p.cos_offset + cos) * (p.tan_offset + tan);
        // f64 products of f32-sized values cannot overflow; NaN would need an infinity.
        if y.is_nan() {
            0.0
        } else {
            y.clamp(-1.0, 1.0) as f32
        }
    }
}

impl InPlace for Distortion {
    type Params = Params;

    fn new(p: &Params) -> Self {
        Distortion {
            p: *p,
            one_angle: p.sin_scale == p.cos_scale && p.cos_scale == p.tan_scale,
        }
    }

    fn set(&mut self, p: &Params) {
        *self = Self::new(p);
    }

    fn reset(&mut self) {}

    fn process(&mut self, buf: &mut [f32]) {
        for s in buf.iter_mut() {
            *s = self.shape(*s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;

    #[test]
    fn all_default_is_not_identity_but_active_when_any_field_differs() {
        assert!(!chain(r#"{"distortion":{}}"#).is_active());
        // An all-default object next to an active filter is still skipped (no sin² colouring).
        let input = sine(440.0, 0.5, 0.2);
        let out = run(&filters(r#"{"distortion":{},"volume":1.01}"#), &input);
        assert!(max_abs_diff(&out, &input) < 1e-3);
    }

    #[test]
    fn shapes_the_wave_and_stays_finite() {
        let input = sine(440.0, 0.9, 0.2);
        let out = run(&filters(r#"{"distortion":{"scale":1.0000001}}"#), &input);
        // sin²x of a sine: never negative, clearly different from the input.
        assert!(out.iter().all(|&v| v.is_finite() && v >= -1e-6));
        assert!(max_abs_diff(&out, &input) > 0.5);
    }

    #[test]
    fn extreme_values_stay_finite_and_in_range() {
        let input = sine(440.0, 1.0, 0.1);
        for json in [
            r#"{"distortion":{"tanScale":1e30,"scale":3e38,"offset":-3e38}}"#,
            r#"{"distortion":{"sinOffset":3e38,"cosOffset":3e38,"tanOffset":3e38,"scale":3e38}}"#,
            r#"{"distortion":{"tanScale":1.5707963,"scale":-1e10}}"#,
        ] {
            let out = run(&filters(json), &input);
            assert!(
                out.iter().all(|v| v.is_finite() && v.abs() <= 1.0),
                "{json}"
            );
        }
    }
}
