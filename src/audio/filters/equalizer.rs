//! equalizer: 15 band-pass filters in parallel, each scaled by its band's gain and added to the
//! dry signal: `y = x + 4·Σ gᵢ·bᵢ`, clamped to [-1, 1]. Each band is a constant-peak-gain
//! band-pass biquad, `bᵢ[n] = αᵢ·(x[n] − x[n−2]) + γᵢ·bᵢ[n−1] − βᵢ·bᵢ[n−2]`, whose gain is 1 at
//! its centre, so a gain of 0.25 doubles that band (+6 dB), −0.25 cancels it and 1.0 gives ×5.
//!
//! Centres (Hz): 25, 40, 63, 100, 160, 250, 400, 630, 1000, 1600, 2500, 4000, 6300, 10000, 16000,
//! with lavaplayer's coefficient table at 48 kHz (below).
//!
//! Gains are clamped to [-0.25, 1.0] (lavaplayer's own range); bands not listed are 0; a band
//! listed twice takes its last gain. Active when any gain ≠ 0. Only bands with a gain are run;
//! changed gains glide over 10 ms and a band that comes back starts from silence, so neither
//! clicks.

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

#[derive(Debug)]
pub(super) struct Equalizer {
    gains: [Glide; BANDS],
    /// Bands currently run, in `order[..running]`.
    order: [usize; BANDS],
    running: usize,
    /// x[n−1], x[n−2] per channel.
    x: [[f64; 2]; 2],
    /// b[n−1], b[n−2] per band and channel.
    y: [[[f64; 2]; 2]; BANDS],
}

impl Equalizer {
    /// Run exactly the bands that have, or are gliding from or to, a gain; a band dropped from
    /// the set forgets its history so that it restarts from silence.
    fn choose_bands(&mut self) {
        self.running = 0;
        for i in 0..BANDS {
            let g = &self.gains[i];
            if g.value() != 0.0 || g.moving() {
                self.order[self.running] = i;
                self.running += 1;
            } else {
                self.y[i] = [[0.0; 2]; 2];
            }
        }
    }

    fn gliding(&self) -> bool {
        self.order[..self.running]
            .iter()
            .any(|&i| self.gains[i].moving())
    }
}

impl InPlace for Equalizer {
    type Params = Params;

    fn new(p: &Params) -> Self {
        let mut eq = Equalizer {
            gains: p.gains.map(Glide::new),
            order: [0; BANDS],
            running: 0,
            x: [[0.0; 2]; 2],
            y: [[[0.0; 2]; 2]; BANDS],
        };
        eq.choose_bands();
        eq
    }

    fn set(&mut self, p: &Params) {
        for (g, &v) in self.gains.iter_mut().zip(&p.gains) {
            g.set(v);
        }
        self.choose_bands();
    }

    fn reset(&mut self) {
        self.gains.iter_mut().for_each(Glide::settle);
        self.x = [[0.0; 2]; 2];
        self.y = [[[0.0; 2]; 2]; BANDS];
        self.choose_bands();
    }

    fn process(&mut self, buf: &mut [f32]) {
        let mut gains = [0.0f64; BANDS];
        let mut gliding = self.gliding();
        for frame in buf.chunks_exact_mut(2) {
            if gliding {
                for &i in &self.order[..self.running] {
                    self.gains[i].next();
                }
                gliding = self.gliding();
            }
            for &i in &self.order[..self.running] {
                gains[i] = self.gains[i].value() as f64;
            }
            for (c, s) in frame.iter_mut().enumerate() {
                let x = *s as f64;
                let [x1, x2] = self.x[c];
                let mut sum = 0.0;
                for &i in &self.order[..self.running] {
                    let (beta, alpha, gamma) = COEFFS[i];
                    let [y1, y2] = self.y[i][c];
                    let y = alpha * (x - x2) + gamma * y1 - beta * y2;
                    self.y[i][c] = [y, y1];
                    sum += gains[i] * y;
                }
                self.x[c] = [x, x1];
                *s = clamp_unit((x + 4.0 * sum) as f32);
            }
        }
        // Bands that have glided down to 0 stop costing anything.
        if self.order[..self.running]
            .iter()
            .any(|&i| self.gains[i].value() == 0.0)
        {
            self.choose_bands();
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
