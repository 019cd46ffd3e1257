//! equalizer: 15 band-pass filters in parallel, each scaled by its band's gain and added to the
//! dry signal: `y = x + 4·Σ gᵢ·bᵢ`, clamped to [-1, 1]. Each band is a constant-peak-gain
//! band-pass biquad, `bᵢ[n] = αᵢ·(x[n] − x[n−2]) + γᵢ·bᵢ[n−1] − βᵢ·bᵢ[n−2]`, whose gain is 1 at
//! its centre, so a gain of 0.25 doubles that band (+6 dB), −0.25 cancels it and 1.0 gives ×5.
//!
//! Centres (Hz): 25, 40, 63, 100, 160, 250, 400, 630, 1000, 1600, 2500, 4000, 6300, 10000, 16000,
//! with lavaplayer's coefficient table at 48 kHz (below).
//!
//! Gains are clamped to [-0.25, 1.0] (lavaplayer's own range); bands not listed are 0; a band
//! listed twice takes its last gain. Active when any gain ≠ 0. While active, all 15 bands run
//! (side by side in SIMD lanes, in f32 as lavaplayer computes them), so a band whose gain
//! returns from 0 is already in step; changed gains glide over 10 ms so that nothing clicks.

use super::glide::Glide;
use super::{InPlace, clamp_unit};
use crate::protocol::filters::Band;

pub(super) const BANDS: usize = 15;

/// (β, α, γ) per band at 48 kHz.
const COEFFS: [(f64, f64, f64); BANDS] = [
    (9.9847546664e-01, 7.6226668143e-04, 1.9984647656e+00),
    (9.9756184654e-01, 1.2190767289e-03, 1.9975344645e+00),
    (9.9616261379e-01, 1.9186931041e-03, 1.9960947369e+00),
    (9.9391578543e-01, 3.0421072865e-03, 1.9937449618e+00),
    (9.9028307215e-01, 4.8584639242e-03, 1.9898465702e+00),
    (9.8485897264e-01, 7.5705136795e-03, 1.9837962543e+00),
    (9.7588512657e-01, 1.2057436715e-02, 1.9731772447e+00),
    (9.6228521814e-01, 1.8857390928e-02, 1.9556164694e+00),
    (9.4080933132e-01, 2.9595334338e-02, 1.9242054384e+00),
    (9.0702059196e-01, 4.6489704022e-02, 1.8653476166e+00),
    (8.5868004289e-01, 7.0659978553e-02, 1.7600401337e+00),
    (7.8409610788e-01, 1.0795194606e-01, 1.5450725522e+00),
    (6.8332861002e-01, 1.5833569499e-01, 1.1426447155e+00),
    (5.5267518228e-01, 2.2366240886e-01, 4.0186190803e-01),
    (4.1811888447e-01, 2.9094055777e-01, -7.0905944223e-01),
];

const MIN_GAIN: f32 = -0.25;
const MAX_GAIN: f32 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    gains: [f32; BANDS],
}

pub(super) fn params(cfg: &Option<Vec<Band>>) -> Option<Params> {
    let mut gains = [0.0f32; BANDS];
    for b in cfg.as_ref()? {
        if let Ok(i) = usize::try_from(b.band)
            && i < BANDS
        {
            gains[i] = if b.gain.is_nan() {
                0.0
            } else {
                b.gain.clamp(MIN_GAIN, MAX_GAIN)
            };
        }
    }
    gains.iter().any(|&g| g != 0.0).then_some(Params { gains })
}

/// Lanes of the band arrays: the 15 bands and one silent pad, so each per-sample step is a
/// fixed-size loop the compiler turns into SIMD.
const LANES: usize = 16;

/// `COEFFS` split into lane arrays (the pad lane all zero, so it stays silent).
struct Lanes {
    alpha: [f32; LANES],
    beta: [f32; LANES],
    gamma: [f32; LANES],
}

const LANE_COEFFS: Lanes = {
    let mut l = Lanes {
        alpha: [0.0; LANES],
        beta: [0.0; LANES],
        gamma: [0.0; LANES],
    };
    let mut i = 0;
    while i < BANDS {
        l.beta[i] = COEFFS[i].0 as f32;
        l.alpha[i] = COEFFS[i].1 as f32;
        l.gamma[i] = COEFFS[i].2 as f32;
        i += 1;
    }
    l
};

/// Band outputs smaller than this are flushed to zero once per call, so a band ringing down in
/// silence never reaches the subnormal range (where x86 arithmetic slows down a hundredfold).
const FLUSH: f32 = 1e-20;

#[derive(Debug)]
pub(super) struct Equalizer {
    gains: [Glide; BANDS],
    /// x[n−1], x[n−2] per channel.
    x: [[f32; 2]; 2],
    /// b[n−1] and b[n−2] per channel, one lane per band.
    y1: [[f32; LANES]; 2],
    y2: [[f32; LANES]; 2],
}

impl Equalizer {
    fn gliding(&self) -> bool {
        self.gains.iter().any(Glide::moving)
    }

    fn lane_gains(&self) -> [f32; LANES] {
        let mut g = [0.0; LANES];
        for (g, glide) in g.iter_mut().zip(&self.gains) {
            // ×4 folded in: y = x + Σ (4·gᵢ)·bᵢ.
            *g = 4.0 * glide.value();
        }
        g
    }

    /// One sample of one channel through all bands: the dry sample plus the weighted bands.
    #[inline(always)]
    fn step(&mut self, c: usize, x: f32, gains: &[f32; LANES]) -> f32 {
        let k = &LANE_COEFFS;
        let [x1, x2] = self.x[c];
        let d = x - x2;
        let (y1, y2) = (&mut self.y1[c], &mut self.y2[c]);
        let mut w = [0.0f32; LANES];
        for i in 0..LANES {
            let y = k.alpha[i] * d + k.gamma[i] * y1[i] - k.beta[i] * y2[i];
            y2[i] = y1[i];
            y1[i] = y;
            w[i] = gains[i] * y;
        }
        self.x[c] = [x, x1];
        // Pairwise sum, written out so it vectorises (float addition is not reassociated).
        for half in [8, 4, 2, 1] {
            for i in 0..half {
                w[i] += w[i + half];
            }
        }
        clamp_unit(x + w[0])
    }
}

impl InPlace for Equalizer {
    type Params = Params;

    fn new(p: &Params) -> Self {
        Equalizer {
            gains: p.gains.map(Glide::new),
            x: [[0.0; 2]; 2],
            y1: [[0.0; LANES]; 2],
            y2: [[0.0; LANES]; 2],
        }
    }

    fn set(&mut self, p: &Params) {
        for (g, &v) in self.gains.iter_mut().zip(&p.gains) {
            g.set(v);
        }
    }

    fn reset(&mut self) {
        self.gains.iter_mut().for_each(Glide::settle);
        self.x = [[0.0; 2]; 2];
        self.y1 = [[0.0; LANES]; 2];
        self.y2 = [[0.0; LANES]; 2];
    }

    fn process(&mut self, buf: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX.
            unsafe { self.run_avx(buf) };
            return;
        }
        self.run(buf);
    }
}

impl Equalizer {
    /// `run` compiled for AVX: the sixteen lanes of a channel in two 8-wide vectors instead of
    /// four 4-wide ones.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn run_avx(&mut self, buf: &mut [f32]) {
        self.run(buf);
    }

    #[inline(always)]
    fn run(&mut self, buf: &mut [f32]) {
        let mut gains = self.lane_gains();
        let mut gliding = self.gliding();
        for frame in buf.chunks_exact_mut(2) {
            if gliding {
                self.gains.iter_mut().for_each(|g| {
                    g.next();
                });
                gains = self.lane_gains();
                gliding = self.gliding();
            }
            frame[0] = self.step(0, frame[0], &gains);
            frame[1] = self.step(1, frame[1], &gains);
        }
        for y in self.y1.iter_mut().chain(self.y2.iter_mut()).flatten() {
            if y.abs() < FLUSH {
                *y = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;

    fn change_db(json: &str, freq: f64) -> f64 {
        let input = sine(freq, 0.1, 1.0);
        let out = run(&filters(json), &input);
        let skip = 24000; // the 25 Hz band rings for a while
        gain_db(&left(&input)[skip..], &left(&out)[skip..])
    }

    #[test]
    fn boosting_band_8_raises_1khz_and_not_100hz() {
        let json = r#"{"equalizer":[{"band":8,"gain":0.25}]}"#;
        let at_1k = change_db(json, 1000.0);
        let at_100 = change_db(json, 100.0);
        assert!((at_1k - 6.02).abs() < 0.3, "1 kHz changed by {at_1k} dB");
        assert!(at_100.abs() < 0.5, "100 Hz changed by {at_100} dB");
    }

    #[test]
    fn minus_a_quarter_cancels_a_band() {
        let json = r#"{"equalizer":[{"band":3,"gain":-0.25}]}"#;
        let at_100 = change_db(json, 100.0);
        let at_1k = change_db(json, 1000.0);
        assert!(at_100 < -20.0, "100 Hz only {at_100} dB down");
        assert!(at_1k.abs() < 0.5, "1 kHz changed by {at_1k} dB");
    }

    #[test]
    fn gains_clamp_to_the_lavaplayer_range() {
        // 7.0 acts as 1.0 (×5, +14 dB at the centre), -3 as -0.25.
        let boost = change_db(r#"{"equalizer":[{"band":8,"gain":7.0}]}"#, 1000.0);
        let max = change_db(r#"{"equalizer":[{"band":8,"gain":1.0}]}"#, 1000.0);
        assert!(
            (boost - max).abs() < 1e-6 && (max - 13.98).abs() < 0.3,
            "{boost} / {max}"
        );
        let cut = change_db(r#"{"equalizer":[{"band":8,"gain":-3}]}"#, 1000.0);
        assert!(cut < -20.0);
    }

    #[test]
    fn all_zero_or_empty_is_off_and_a_band_listed_twice_takes_the_last_gain() {
        assert!(!chain(r#"{"equalizer":[]}"#).is_active());
        assert!(!chain(r#"{"equalizer":[{"band":2,"gain":0}]}"#).is_active());
        assert!(!chain(r#"{"equalizer":[{"band":2,"gain":0.5},{"band":2,"gain":0}]}"#).is_active());
        assert!(chain(r#"{"equalizer":[{"band":2}]}"#).is_active());
    }
}
