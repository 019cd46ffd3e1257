//! distortion: a waveshaper built from three trigonometric factors,
//! `y = offset + scale · (sinOffset + sin(x·sinScale)) · (cosOffset + cos(x·cosScale)) ·
//! (tanOffset + tan(x·tanScale))`, clamped to [-1, 1]. With every field at its default the
//! product is `sin x · cos x · tan x = sin² x`, which is not the identity: an all-default
//! distortion still colours the sound, as in the reference.
//!
//! Active when any field differs from its default. The arithmetic runs in f64: every factor of
//! f32-range inputs then stays finite (tan near its poles included), so the result is always a
//! number before the clamp. Sine and cosine come from polynomials accurate to a few parts in
//! 10⁹ (see `fast_sin_cos`), computed for a whole block at once in SIMD lanes.

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
    /// The same settings in f32, used when `small` holds.
    p32: Coefficients<f32>,
    /// How the three factors are computed (from the settings).
    form: Form,
    /// Every angle stays within the polynomial's range for inputs in [-1, 1] (the chain's
    /// samples always are), so no sample needs the C library.
    in_range: bool,
    /// Every setting is at most [`SMALL`] in size, so f32 arithmetic is accurate enough and
    /// cannot overflow before the final checks: twice the SIMD lanes of f64.
    small: bool,
}

/// Largest setting (in absolute value) for the f32 path: angles stay below 64 rad, where
/// reducing them in f32 loses at most a few millionths of a radian, and the product of the
/// factors stays far inside f32 except right at a pole of tan, which the final NaN check and
/// clamp take care of as in f64.
const SMALL: f64 = 64.0;

/// How the product of the three factors is computed; the settings decide.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    /// Each factor from its own angle.
    Three,
    /// All three scales equal (as by default): one angle, one sine/cosine pair, tan = sin/cos.
    OneAngle,
    /// One angle and no offset inside the factors (only `offset` and `scale` set, the usual
    /// case): sin·cos·tan = sin², with neither the division nor the quadrant's signs.
    SinSquared,
}

impl Form {
    fn of(p: &Params) -> Form {
        let one_angle = p.sin_scale == p.cos_scale && p.cos_scale == p.tan_scale;
        let no_inner_offsets = p.sin_offset == 0.0 && p.cos_offset == 0.0 && p.tan_offset == 0.0;
        match (one_angle, no_inner_offsets) {
            (true, true) => Form::SinSquared,
            (true, false) => Form::OneAngle,
            (false, _) => Form::Three,
        }
    }
}

/// The eight settings in the arithmetic's own type.
#[derive(Debug, Clone, Copy)]
struct Coefficients<T> {
    sin_offset: T,
    sin_scale: T,
    cos_offset: T,
    cos_scale: T,
    tan_offset: T,
    tan_scale: T,
    offset: T,
    scale: T,
}

impl Params {
    fn coefficients<T: Real>(&self) -> Coefficients<T> {
        Coefficients {
            sin_offset: T::of(self.sin_offset),
            sin_scale: T::of(self.sin_scale),
            cos_offset: T::of(self.cos_offset),
            cos_scale: T::of(self.cos_scale),
            tan_offset: T::of(self.tan_offset),
            tan_scale: T::of(self.tan_scale),
            offset: T::of(self.offset),
            scale: T::of(self.scale),
        }
    }

    fn largest(&self) -> f64 {
        [
            self.sin_offset,
            self.sin_scale,
            self.cos_offset,
            self.cos_scale,
            self.tan_offset,
            self.tan_scale,
            self.offset,
            self.scale,
        ]
        .into_iter()
        .fold(0.0, |m, v| m.max(v.abs()))
    }
}

/// The arithmetic the waveshaper needs, in f32 or f64.
trait Real:
    Copy
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn of(v: f64) -> Self;
    fn from_sample(x: f32) -> Self;
    /// Clamped to [-1, 1]; NaN becomes 0.
    fn to_sample(self) -> f32;
    /// `(j, r)` with `self = j·π/2 + r`, `r ∈ [−π/4, π/4]`, `j` a whole number. Float
    /// arithmetic only (a saturating conversion to an integer would not vectorise).
    fn quadrant(self) -> (Self, Self);
    fn floor(self) -> Self;
}

impl Real for f64 {
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn from_sample(x: f32) -> Self {
        f64::from(x)
    }
    #[inline(always)]
    fn to_sample(self) -> f32 {
        if self.is_nan() {
            0.0
        } else {
            self.clamp(-1.0, 1.0) as f32
        }
    }
    #[inline(always)]
    fn quadrant(self) -> (Self, Self) {
        let j = (self * std::f64::consts::FRAC_2_PI).round();
        (j, self - j * std::f64::consts::FRAC_PI_2)
    }
    #[inline(always)]
    fn floor(self) -> Self {
        f64::floor(self)
    }
}

impl Real for f32 {
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn from_sample(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn to_sample(self) -> f32 {
        if self.is_nan() {
            0.0
        } else {
            self.clamp(-1.0, 1.0)
        }
    }
    #[inline(always)]
    fn quadrant(self) -> (Self, Self) {
        let j = (self * std::f32::consts::FRAC_2_PI).round();
        (j, self - j * std::f32::consts::FRAC_PI_2)
    }
    #[inline(always)]
    fn floor(self) -> Self {
        f32::floor(self)
    }
}

/// The waveshaper for one sample; `sin_cos` computes the trigonometry and `sin_squared` the
/// square of the sine.
#[inline(always)]
fn shape<T: Real>(
    p: &Coefficients<T>,
    form: Form,
    x: f32,
    sin_cos: impl Fn(T) -> (T, T),
    sin_squared: impl Fn(T) -> T,
) -> f32 {
    let x = T::from_sample(x);
    let (sin, cos, tan);
    match form {
        Form::SinSquared => return (p.offset + p.scale * sin_squared(x * p.sin_scale)).to_sample(),
        Form::OneAngle => {
            // sin, cos and tan of one angle: one evaluation instead of three.
            let (s, c) = sin_cos(x * p.sin_scale);
            (sin, cos, tan) = (s, c, s / c);
        }
        Form::Three => {
            sin = sin_cos(x * p.sin_scale).0;
            cos = sin_cos(x * p.cos_scale).1;
            let (s, c) = sin_cos(x * p.tan_scale);
            tan = s / c;
        }
    }
    // In f64, products of f32-sized values cannot overflow; in f32 the settings are small
    // (see `SMALL`). Either way NaN would need an infinity (tan right at a pole).
    (p.offset + p.scale * (p.sin_offset + sin) * (p.cos_offset + cos) * (p.tan_offset + tan))
        .to_sample()
}

/// Arguments up to this size are computed by [`fast_sin_cos`] in f64 (its reduction loses
/// accuracy beyond); the C library takes the rest.
const FAST_RANGE: f64 = 1e6;

/// `(sin a, cos a)` for |a| < [`FAST_RANGE`] in f64 or |a| ≤ [`SMALL`] in f32: `a` reduced to
/// `r ∈ [−π/4, π/4]` by a multiple `j` of π/2, then Taylor polynomials of r (to r⁹ and r¹⁰,
/// error below 2·10⁻⁹ on that interval), rotated by the quadrant `j mod 4`. No branches and no
/// calls, so that a loop over samples vectorises (audio crosses quadrants unpredictably, and
/// mispredicted branches would cost more than the polynomials).
#[inline(always)]
fn fast_sin_cos<T: Real>(a: T) -> (T, T) {
    let (j, s, c) = reduced_sin_cos(a);
    // Quadrant q: (sin, cos) = (s, c), (c, −s), (−s, −c), (−c, s) for q = 0, 1, 2, 3.
    let k = T::of;
    let q = j - k(4.0) * (j * k(0.25)).floor(); // j mod 4
    let half = (q * k(0.5)).floor(); // 0, 0, 1, 1
    let odd = q - k(2.0) * half;
    let sin_sign = k(1.0) - k(2.0) * half;
    // cos is negative in quadrants 1 and 2: ⌊(q + 1)/2⌋ = 0, 1, 1, 2 is odd there.
    let next = ((q + k(1.0)) * k(0.5)).floor();
    let cos_sign = k(1.0) - k(2.0) * (next - k(2.0) * (next * k(0.5)).floor());
    (
        (s + odd * (c - s)) * sin_sign,
        (c + odd * (s - c)) * cos_sign,
    )
}

/// `sin² a` over the same range as [`fast_sin_cos`]: the square of `s` or `c` as the quadrant
/// is even or odd, so no signs are needed.
#[inline(always)]
fn fast_sin_squared<T: Real>(a: T) -> T {
    let (j, s, c) = reduced_sin_cos(a);
    let (s2, c2) = (s * s, c * c);
    let odd = j - T::of(2.0) * (j * T::of(0.5)).floor();
    s2 + odd * (c2 - s2)
}

/// `sin²` for any angle.
fn sin_squared(a: f64) -> f64 {
    let s = sin_cos(a).0;
    s * s
}

/// `(j, sin r, cos r)` with `a = j·π/2 + r`, `r ∈ [−π/4, π/4]`.
#[inline(always)]
fn reduced_sin_cos<T: Real>(a: T) -> (T, T, T) {
    let (j, r) = a.quadrant();
    let r2 = r * r;
    let k = T::of;
    let s = r
        * (k(1.0)
            + r2 * (k(-1.0 / 6.0)
                + r2 * (k(1.0 / 120.0) + r2 * (k(-1.0 / 5040.0) + r2 * k(1.0 / 362_880.0)))));
    let c = k(1.0)
        + r2 * (k(-0.5)
            + r2 * (k(1.0 / 24.0)
                + r2 * (k(-1.0 / 720.0) + r2 * (k(1.0 / 40_320.0) + r2 * k(-1.0 / 3_628_800.0)))));
    (j, s, c)
}

/// `(sin a, cos a)` for any `a`.
fn sin_cos(a: f64) -> (f64, f64) {
    if a.abs() < FAST_RANGE {
        fast_sin_cos(a)
    } else {
        a.sin_cos()
    }
}

/// The fast path over a block: every angle in range, so nothing but arithmetic (one loop per
/// form, so that none decides per sample).
#[inline(always)]
fn shape_block<T: Real>(p: &Coefficients<T>, form: Form, buf: &mut [f32]) {
    let each = |buf: &mut [f32], form| {
        for v in buf.iter_mut() {
            *v = shape(p, form, *v, fast_sin_cos, fast_sin_squared);
        }
    };
    match form {
        Form::SinSquared => each(buf, Form::SinSquared),
        Form::OneAngle => each(buf, Form::OneAngle),
        Form::Three => each(buf, Form::Three),
    }
}

/// The same loop compiled for AVX2 (twice the lanes of SSE2).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn shape_block_avx2<T: Real>(p: &Coefficients<T>, form: Form, buf: &mut [f32]) {
    shape_block(p, form, buf);
}

/// [`shape_block`] on the widest SIMD this CPU has.
fn run_block<T: Real>(p: &Coefficients<T>, form: Form, buf: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2.
        unsafe { shape_block_avx2(p, form, buf) };
        return;
    }
    shape_block(p, form, buf);
}

impl InPlace for Distortion {
    type Params = Params;

    fn new(p: &Params) -> Self {
        let widest = p
            .sin_scale
            .abs()
            .max(p.cos_scale.abs())
            .max(p.tan_scale.abs());
        Distortion {
            p: *p,
            p32: p.coefficients(),
            form: Form::of(p),
            in_range: widest < FAST_RANGE,
            small: p.largest() <= SMALL,
        }
    }

    fn set(&mut self, p: &Params) {
        *self = Self::new(p);
    }

    fn reset(&mut self) {}

    fn process(&mut self, buf: &mut [f32]) {
        if self.small {
            run_block(&self.p32, self.form, buf);
        } else if self.in_range {
            run_block(&self.p.coefficients::<f64>(), self.form, buf);
        } else {
            let p = self.p.coefficients::<f64>();
            for v in buf.iter_mut() {
                *v = shape(&p, self.form, *v, sin_cos, sin_squared);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;
    use super::super::{InPlace, clamp_unit};
    use super::{Distortion, Form, params, sin_cos};
    use crate::protocol::filters::Distortion as Config;

    #[test]
    fn the_f32_path_matches_the_formula_for_small_settings() {
        let input = sine(440.0, 0.95, 0.05);
        for config in [
            Config {
                scale: 0.9,
                ..Config::default()
            },
            Config {
                sin_offset: 0.3,
                sin_scale: 2.5,
                cos_offset: -0.2,
                cos_scale: 40.0,
                tan_offset: 1.0,
                tan_scale: -3.0,
                offset: 0.1,
                scale: 0.5,
            },
            Config {
                tan_scale: std::f32::consts::FRAC_PI_2 - 1e-7,
                scale: -64.0,
                ..Config::default()
            },
        ] {
            let d = Distortion::new(&params(&Some(config)).unwrap());
            assert!(d.small);
            assert_computes_the_formula(d, &config, &input);
        }
    }

    /// The formula as it reads, in f64 with the C library's functions.
    fn reference(c: &Config, x: f32) -> f32 {
        let (x, f) = (f64::from(x), |v: f32| f64::from(v));
        let y = f(c.offset)
            + f(c.scale)
                * (f(c.sin_offset) + (x * f(c.sin_scale)).sin())
                * (f(c.cos_offset) + (x * f(c.cos_scale)).cos())
                * (f(c.tan_offset) + (x * f(c.tan_scale)).tan());
        if y.is_nan() {
            0.0
        } else {
            y.clamp(-1.0, 1.0) as f32
        }
    }

    /// `d` (made from `config`) gives the formula's value for every sample of `input`, within
    /// a few parts in 10⁴ (near a pole of tan both clamp; elsewhere f32 keeps a few millionths).
    fn assert_computes_the_formula(mut d: Distortion, config: &Config, input: &[f32]) {
        let mut out = input.to_vec();
        d.process(&mut out);
        for (&x, &y) in input.iter().zip(&out) {
            let want = reference(config, x);
            assert!(
                (y - want).abs() < 2e-4,
                "{config:?}: {x} gives {y}, want {want}"
            );
            assert_eq!(clamp_unit(y), y);
        }
    }

    #[test]
    fn each_form_computes_the_formula() {
        let input = sine(440.0, 0.95, 0.05);
        for (config, form) in [
            (
                Config {
                    scale: 0.9,
                    ..Config::default()
                },
                Form::SinSquared,
            ),
            (
                Config {
                    sin_scale: 3.0,
                    cos_scale: 3.0,
                    tan_scale: 3.0,
                    offset: 0.2,
                    scale: 0.5,
                    ..Config::default()
                },
                Form::SinSquared,
            ),
            (
                Config {
                    cos_offset: 0.25,
                    scale: 0.7,
                    ..Config::default()
                },
                Form::OneAngle,
            ),
            (
                Config {
                    tan_scale: 0.5,
                    ..Config::default()
                },
                Form::Three,
            ),
            // Settings too large for f32: the same forms in f64.
            (
                Config {
                    sin_scale: 100.0,
                    cos_scale: 100.0,
                    tan_scale: 100.0,
                    ..Config::default()
                },
                Form::SinSquared,
            ),
            (
                Config {
                    sin_scale: 100.0,
                    cos_scale: 100.0,
                    tan_scale: 100.0,
                    tan_offset: 1.0,
                    scale: 0.1,
                    ..Config::default()
                },
                Form::OneAngle,
            ),
        ] {
            let d = Distortion::new(&params(&Some(config)).unwrap());
            assert_eq!(d.form, form, "{config:?}");
            assert_computes_the_formula(d, &config, &input);
        }
    }

    #[test]
    fn the_fast_sine_and_cosine_match_the_c_library() {
        let mut worst = 0.0f64;
        for i in -200_000i64..=200_000 {
            // Steps that are not a fraction of π, over ±100 and out to ±10⁵.
            let a = i as f64 * 0.000_5 * if i.abs() > 100_000 { 1000.0 } else { 1.0 };
            let (s, c) = sin_cos(a);
            worst = worst.max((s - a.sin()).abs()).max((c - a.cos()).abs());
        }
        assert!(worst < 1e-8, "off by {worst}");
        assert_eq!(sin_cos(1e300), 1e300f64.sin_cos());
        assert!(sin_cos(f64::NAN).0.is_nan());
    }

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
