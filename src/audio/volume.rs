//! The player volume (0..=1000, default 100), applied to 16-bit samples after the filter chain
//! with Lavalink's loudness curve.
//!
//! The gain is an integer multiplier `m` over 10000: up to volume 150 it is
//! `m = trunc(tan(v·0.0079)·10000)` (a curve that is nearly linear near 100 and steeper above),
//! and from there on the straight line `m = 24621·v/150` in integer arithmetic. Each sample
//! becomes `s·m/10000` (integer division), clamped to the 16-bit range. Volume 100 is an exact
//! bypass (the formula would give 1.0092) and 0 is silence.

/// The player volume, with its multiplier precomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayerVolume {
    level: u16,
    multiplier: i64,
}

impl Default for PlayerVolume {
    fn default() -> Self {
        PlayerVolume::new(Self::DEFAULT as i64)
    }
}

impl PlayerVolume {
    pub const DEFAULT: u16 = 100;
    pub const MAX: u16 = 1000;
    /// The multiplier's denominator.
    const UNIT: i64 = 10_000;

    /// The volume for `level`, clamped to 0..=1000.
    pub fn new(level: i64) -> Self {
        let level = level.clamp(0, Self::MAX as i64) as u16;
        let v = level as i64;
        let multiplier = if level == Self::DEFAULT {
            Self::UNIT
        } else if v <= 150 {
            ((v as f64 * 0.0079).tan() * Self::UNIT as f64).trunc() as i64
        } else {
            24_621 * v / 150
        };
        PlayerVolume { level, multiplier }
    }

    pub fn level(&self) -> u16 {
        self.level
    }

    /// The gain as a factor (multiplier / 10000).
    pub fn gain(&self) -> f64 {
        self.multiplier as f64 / Self::UNIT as f64
    }

    /// Volume 100: samples pass unchanged, and the caller may skip `apply` altogether.
    pub fn is_unity(&self) -> bool {
        self.multiplier == Self::UNIT
    }

    /// Volume 0: every sample becomes 0.
    pub fn is_silent(&self) -> bool {
        self.multiplier == 0
    }

    /// Scale 16-bit samples in place.
    pub fn apply(&self, samples: &mut [i16]) {
        if self.is_unity() {
            return;
        }
        if self.is_silent() {
            samples.fill(0);
            return;
        }
        let m = self.multiplier;
        for s in samples {
            *s = (*s as i64 * m / Self::UNIT).clamp(i16::MIN as i64, i16::MAX as i64) as i16;
        }
    }

    /// The same gain on float samples, clamped to [-1, 1] (NaN becomes 0), for a pipeline that
    /// converts to 16-bit later. Differs from `apply` only by the integer rounding.
    pub fn apply_f32(&self, samples: &mut [f32]) {
        if self.is_unity() {
            return;
        }
        let g = self.gain() as f32;
        for s in samples {
            let v = *s * g;
            *s = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine_i16(amplitude: f64, frames: usize) -> Vec<i16> {
        (0..frames)
            .map(|i| {
                (amplitude * (std::f64::consts::TAU * 1000.0 * i as f64 / 48_000.0).sin()).round()
                    as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn volume_50_measures_as_the_formula_says() {
        let input = sine_i16(16_000.0, 48_000);
        let mut out = input.clone();
        PlayerVolume::new(50).apply(&mut out);
        let measured = 20.0 * (rms(&out) / rms(&input)).log10();
        let m = ((50.0f64 * 0.0079).tan() * 10_000.0).trunc();
        assert_eq!(m, 4169.0);
        let expected = 20.0 * (m / 10_000.0).log10();
        assert!(
            (measured - expected).abs() < 0.01,
            "{measured} dB vs {expected} dB"
        );
    }

    #[test]
    fn hundred_is_exact_and_zero_is_silent() {
        let input = sine_i16(30_000.0, 480);
        let mut out = input.clone();
        let unity = PlayerVolume::new(100);
        assert!(unity.is_unity());
        unity.apply(&mut out);
        assert_eq!(out, input);
        assert_eq!(PlayerVolume::default(), unity);
        let mut out = input.clone();
        let zero = PlayerVolume::new(0);
        assert!(zero.is_silent());
        zero.apply(&mut out);
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn multipliers_follow_the_curve_and_the_line() {
        assert_eq!(PlayerVolume::new(99).multiplier, 9_934);
        assert_eq!(PlayerVolume::new(150).multiplier, 24_621);
        assert_eq!(PlayerVolume::new(151).multiplier, 24_785);
        assert_eq!(PlayerVolume::new(1000).multiplier, 164_140);
        // Out of range clamps.
        assert_eq!(PlayerVolume::new(5000).level(), 1000);
        assert_eq!(PlayerVolume::new(-3).level(), 0);
    }

    #[test]
    fn loud_volumes_clamp_to_16_bits_without_wrapping() {
        let mut s = [i16::MAX, i16::MIN, 1000, -1000];
        PlayerVolume::new(1000).apply(&mut s);
        assert_eq!(s, [i16::MAX, i16::MIN, 16_414, -16_414]);
        let mut f = [0.9f32, -0.9, 0.01, f32::NAN];
        PlayerVolume::new(1000).apply_f32(&mut f);
        assert_eq!(f[..2], [1.0, -1.0]);
        assert!((f[2] - 0.16414).abs() < 1e-6);
        assert_eq!(f[3], 0.0);
    }
}
