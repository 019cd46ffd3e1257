//! equalizer: 15 band-pass filters in parallel, each scaled by its band's gain and added to the
//! dry signal: `y = x + 4·Σ gᵢ·bᵢ`, clamped to [-1, 1]. Each band is a constant-peak-gain
//! band-pass biquad, `bᵢ[n] = αᵢ·(x[n] − x[n−2]) + γᵢ·bᵢ[n−1] − βᵢ·bᵢ[n−2]`, whose gain is 1 at
//! its centre, so a gain of 0.25 doubles that band (+6 dB), −0.25 cancels it and 1.0 gives ×5.
//!
//! Centres (Hz): 25, 40, 63, 100, 160, 250, 400, 630, 1000, 1600, 2500, 4000, 6300, 10000, 16000,
//! with lavaplayer's coefficient table at 48 kHz (below).
//!
//! Gains are clamped to [-0.25, 1.0] (lavaplayer's own range); bands not listed are 0; a band
//! listed twice takes its last gain. Active when any gain ≠ 0. Only bands with a gain (or one
//! still gliding to or from 0) run: a band at 0 adds nothing, so its filter is not computed, and
//! a band that gets a gain starts from rest while its gain glides up from 0 (lavaplayer builds
//! every band afresh on each filter change). Changed gains glide over 10 ms so that nothing
//! clicks. The running bands of both channels are computed together in SIMD lanes, in f32 as
//! lavaplayer computes them.

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

/// Lanes per block: the band state is kept in blocks of eight lanes, alternating channels:
/// left of the running bands 0–7, right of the same, left of running bands 8–14, right of the
/// same. Up to eight running bands fill the first two blocks and a stereo frame is one 16-lane
/// step; more take all four.
const BLOCK: usize = 8;
const LANES: usize = 4 * BLOCK;

/// The lane of running band `slot` (its place among the running bands) in channel `c`.
const fn lane(slot: usize, c: usize) -> usize {
    (slot / BLOCK) * 2 * BLOCK + c * BLOCK + slot % BLOCK
}

/// Band outputs smaller than this are flushed to zero once per call, so a band ringing down in
/// silence never reaches the subnormal range (where x86 arithmetic slows down a hundredfold).
const FLUSH: f32 = 1e-20;

#[derive(Debug)]
pub(super) struct Equalizer {
    gains: [Glide; BANDS],
    /// The bands that run, in slot order; `running[..count]` are in use.
    running: [usize; BANDS],
    count: usize,
    bank: Bank,
}

/// The running bands' filters, lane by lane, and the input history.
#[derive(Debug, Clone)]
struct Bank {
    /// Coefficients per lane (zero in unused lanes, which therefore stay silent).
    alpha: [f32; LANES],
    beta: [f32; LANES],
    gamma: [f32; LANES],
    /// b[n−1] and b[n−2] per lane.
    y1: [f32; LANES],
    y2: [f32; LANES],
    /// x[n−1], x[n−2] per channel.
    x: [[f32; 2]; 2],
}

impl Bank {
    const REST: Bank = Bank {
        alpha: [0.0; LANES],
        beta: [0.0; LANES],
        gamma: [0.0; LANES],
        y1: [0.0; LANES],
        y2: [0.0; LANES],
        x: [[0.0; 2]; 2],
    };

    /// Frames of `buf` through the first `N` lanes (16 or 32) with fixed lane gains: the dry
    /// samples plus the weighted bands.
    fn run<const N: usize>(&mut self, gains: &[f32; LANES], buf: &mut [f32]) {
        for frame in buf.chunks_exact_mut(2) {
            let (xl, xr) = (frame[0], frame[1]);
            let d = [xl - self.x[0][1], xr - self.x[1][1]];
            self.x = [[xl, self.x[0][0]], [xr, self.x[1][0]]];
            let mut sum = [0.0f32; 2];
            for i in 0..N {
                // The part known before the previous output comes first, off the recursion's
                // critical path (the SIMD kernel fuses both steps).
                let known = self.alpha[i] * d[(i / BLOCK) % 2] - self.beta[i] * self.y2[i];
                let y = self.gamma[i] * self.y1[i] + known;
                self.y2[i] = self.y1[i];
                self.y1[i] = y;
                sum[(i / BLOCK) % 2] += gains[i] * y;
            }
            frame[0] = clamp_unit(xl + sum[0]);
            frame[1] = clamp_unit(xr + sum[1]);
        }
    }

    /// `run` on the best kernel this CPU has.
    fn run_best(&mut self, wide: bool, gains: &[f32; LANES], buf: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::audio::has_avx_fma() {
            // SAFETY: the CPU supports AVX and FMA.
            unsafe {
                if wide {
                    x86::run_avx_fma::<true>(self, gains, buf);
                } else {
                    x86::run_avx_fma::<false>(self, gains, buf);
                }
            }
            return;
        }
        if wide {
            self.run::<LANES>(gains, buf);
        } else {
            self.run::<{ 2 * BLOCK }>(gains, buf);
        }
    }

    /// Flushes tiny band outputs to zero (see [`FLUSH`]).
    fn flush(&mut self) {
        for y in self.y1.iter_mut().chain(self.y2.iter_mut()) {
            if y.abs() < FLUSH {
                *y = 0.0;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK, Bank, LANES, clamp_unit};
    use std::arch::x86_64::{
        __m256, _mm_add_ps, _mm_cvtss_f32, _mm_loadu_ps, _mm_max_ps, _mm_min_ps, _mm_movehdup_ps,
        _mm_set1_ps, _mm_storeu_ps, _mm256_add_ps, _mm256_castps256_ps128, _mm256_extractf128_ps,
        _mm256_fmadd_ps, _mm256_fnmadd_ps, _mm256_hadd_ps, _mm256_loadu_ps, _mm256_mul_ps,
        _mm256_set1_ps, _mm256_storeu_ps,
    };

    /// Eight lanes from `a[at..]`.
    #[target_feature(enable = "avx")]
    fn load(a: &[f32; LANES], at: usize) -> __m256 {
        let lanes = &a[at..at + BLOCK];
        // SAFETY: `lanes` holds eight floats.
        unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
    }

    #[target_feature(enable = "avx")]
    fn store(a: &mut [f32; LANES], at: usize, v: __m256) {
        let lanes = &mut a[at..at + BLOCK];
        // SAFETY: `lanes` has room for eight floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) }
    }

    /// `Bank::run` with the lanes held in registers for the whole buffer: one 8-lane vector
    /// per block, two blocks (or all four when `WIDE`) per frame; the left and right sums come
    /// from two horizontal adds.
    ///
    /// # Safety
    /// The CPU must support AVX and FMA.
    #[target_feature(enable = "avx,fma")]
    pub(super) unsafe fn run_avx_fma<const WIDE: bool>(
        bank: &mut Bank,
        gains: &[f32; LANES],
        buf: &mut [f32],
    ) {
        let blocks = if WIDE { 4 } else { 2 };
        let mut alpha = [_mm256_set1_ps(0.0); 4];
        let mut beta = alpha;
        let mut gamma = alpha;
        let mut gain = alpha;
        let mut y1 = alpha;
        let mut y2 = alpha;
        for k in 0..blocks {
            alpha[k] = load(&bank.alpha, k * BLOCK);
            beta[k] = load(&bank.beta, k * BLOCK);
            gamma[k] = load(&bank.gamma, k * BLOCK);
            gain[k] = load(gains, k * BLOCK);
            y1[k] = load(&bank.y1, k * BLOCK);
            y2[k] = load(&bank.y2, k * BLOCK);
        }
        let [[mut l1, mut l2], [mut r1, mut r2]] = bank.x;
        // One frame through the bands: the weighted band outputs of the left and the right
        // channel, eight lanes each (not yet summed).
        let mut bands = |xl: f32, xr: f32| {
            let d = [_mm256_set1_ps(xl - l2), _mm256_set1_ps(xr - r2)];
            (l2, l1, r2, r1) = (l1, xl, r1, xr);
            let mut w = [_mm256_set1_ps(0.0); 4];
            for k in 0..blocks {
                // α·d − β·b[n−2] first; then the recursion's one step: + γ·b[n−1].
                let known = _mm256_fnmadd_ps(beta[k], y2[k], _mm256_mul_ps(alpha[k], d[k % 2]));
                let y = _mm256_fmadd_ps(gamma[k], y1[k], known);
                y2[k] = y1[k];
                y1[k] = y;
                w[k] = _mm256_mul_ps(gain[k], y);
            }
            if WIDE {
                (_mm256_add_ps(w[0], w[2]), _mm256_add_ps(w[1], w[3]))
            } else {
                (w[0], w[1])
            }
        };
        let mut pairs = buf.chunks_exact_mut(4);
        for two in &mut pairs {
            // SAFETY: `two` holds four floats.
            let x = unsafe { _mm_loadu_ps(two.as_ptr()) };
            let (a_left, a_right) = bands(two[0], two[1]);
            let (b_left, b_right) = bands(two[2], two[3]);
            // Three horizontal adds reduce both frames' lanes at once:
            // [al01, al23, ar01, ar23 | al45, al67, ar45, ar67] (and the same for b), then
            // [al0-3, ar0-3, bl0-3, br0-3 | al4-7, ar4-7, bl4-7, br4-7]; the halves added
            // give the four sums in the frames' own order.
            let h = _mm256_hadd_ps(
                _mm256_hadd_ps(a_left, a_right),
                _mm256_hadd_ps(b_left, b_right),
            );
            let sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            // Clamped to [-1, 1]; the sum is never NaN (the chain's input is sanitised and the
            // bands are stable), and the chain sanitises its output again regardless.
            let y = _mm_min_ps(
                _mm_max_ps(_mm_add_ps(x, sums), _mm_set1_ps(-1.0)),
                _mm_set1_ps(1.0),
            );
            // SAFETY: `two` has room for four floats.
            unsafe { _mm_storeu_ps(two.as_mut_ptr(), y) };
        }
        if let [xl, xr] = pairs.into_remainder() {
            let (left, right) = bands(*xl, *xr);
            let h = _mm256_hadd_ps(left, right);
            let h = _mm256_hadd_ps(h, h);
            let s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            *xl = clamp_unit(*xl + _mm_cvtss_f32(s));
            *xr = clamp_unit(*xr + _mm_cvtss_f32(_mm_movehdup_ps(s)));
        }
        bank.x = [[l1, l2], [r1, r2]];
        for k in 0..blocks {
            store(&mut bank.y1, k * BLOCK, y1[k]);
            store(&mut bank.y2, k * BLOCK, y2[k]);
        }
    }
}

impl Equalizer {
    fn gliding(&self) -> bool {
        self.gains.iter().any(Glide::moving)
    }

    /// A band runs while it has a gain or its gain is still moving.
    fn runs(glide: &Glide) -> bool {
        glide.value() != 0.0 || glide.moving()
    }

    /// Lays the lanes out for the bands that run now: a band that kept running keeps its
    /// history (possibly in another lane), one that starts running starts from rest.
    fn assign_lanes(&mut self) {
        let mut running = [0; BANDS];
        let mut count = 0;
        for (band, glide) in self.gains.iter().enumerate() {
            if Self::runs(glide) {
                running[count] = band;
                count += 1;
            }
        }
        if running[..count] == self.running[..self.count] {
            return;
        }
        let x = self.bank.x;
        let old = std::mem::replace(&mut self.bank, Bank { x, ..Bank::REST });
        let was_running = &self.running[..self.count];
        for (slot, &band) in running[..count].iter().enumerate() {
            let was = was_running.iter().position(|&b| b == band);
            let (beta, alpha, gamma) = COEFFS[band];
            for c in 0..2 {
                let l = lane(slot, c);
                let bank = &mut self.bank;
                (bank.alpha[l], bank.beta[l], bank.gamma[l]) =
                    (alpha as f32, beta as f32, gamma as f32);
                if let Some(was) = was {
                    bank.y1[l] = old.y1[lane(was, c)];
                    bank.y2[l] = old.y2[lane(was, c)];
                }
            }
        }
        self.running = running;
        self.count = count;
    }

    /// The gain of each lane (×4 folded in: y = x + Σ (4·gᵢ)·bᵢ).
    fn lane_gains(&self) -> [f32; LANES] {
        let mut g = [0.0; LANES];
        for (slot, &band) in self.running[..self.count].iter().enumerate() {
            let gain = 4.0 * self.gains[band].value();
            g[lane(slot, 0)] = gain;
            g[lane(slot, 1)] = gain;
        }
        g
    }
}

impl InPlace for Equalizer {
    type Params = Params;

    fn new(p: &Params) -> Self {
        let mut eq = Equalizer {
            gains: p.gains.map(Glide::new),
            running: [0; BANDS],
            count: 0,
            bank: Bank::REST,
        };
        eq.assign_lanes();
        eq
    }

    fn set(&mut self, p: &Params) {
        for (g, &v) in self.gains.iter_mut().zip(&p.gains) {
            g.set(v);
        }
    }

    fn reset(&mut self) {
        self.gains.iter_mut().for_each(Glide::settle);
        self.assign_lanes();
        self.bank.x = [[0.0; 2]; 2];
        self.bank.y1 = [0.0; LANES];
        self.bank.y2 = [0.0; LANES];
    }

    fn process(&mut self, buf: &mut [f32]) {
        self.assign_lanes();
        let wide = self.count > BLOCK;
        let mut rest = buf;
        // While gains glide, frame by frame with the gains of each frame.
        while self.gliding() && rest.len() >= 2 {
            self.gains.iter_mut().for_each(|g| {
                g.next();
            });
            let (frame, tail) = rest.split_at_mut(2);
            self.bank.run_best(wide, &self.lane_gains(), frame);
            rest = tail;
        }
        self.bank.run_best(wide, &self.lane_gains(), rest);
        self.bank.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;
    use super::super::{InPlace, clamp_unit};
    use super::{BANDS, BLOCK, COEFFS, Equalizer, LANES, Params};

    /// Largest difference allowed from the f64 formula.
    const TOLERANCE: f32 = 5e-4;

    /// The formula run plainly, every band always, in f64.
    fn reference(gains: &[f32; BANDS], input: &[f32]) -> Vec<f32> {
        let mut x = [[0.0f64; 2]; 2];
        let mut y = [[[0.0f64; 2]; BANDS]; 2];
        let mut out = Vec::with_capacity(input.len());
        for (n, &s) in input.iter().enumerate() {
            let c = n % 2;
            let s = f64::from(s);
            let mut acc = 0.0;
            for (band, &(beta, alpha, gamma)) in COEFFS.iter().enumerate() {
                let [y1, y2] = y[c][band];
                let v = alpha * (s - x[c][1]) + gamma * y1 - beta * y2;
                y[c][band] = [v, y1];
                acc += 4.0 * f64::from(gains[band]) * v;
            }
            x[c] = [s, x[c][0]];
            out.push(clamp_unit((s + acc) as f32));
        }
        out
    }

    /// Music-like stereo: a few tones per side, low to high.
    fn music(secs: f64) -> Vec<f32> {
        stereo(
            |t| 0.2 * tone(60.0, t) + 0.15 * tone(440.0, t) + 0.1 * tone(5000.0, t),
            |t| 0.2 * tone(90.0, t) + 0.15 * tone(1300.0, t) + 0.1 * tone(11000.0, t),
            secs,
        )
    }

    fn with_gains(bands: &[(usize, f32)]) -> [f32; BANDS] {
        let mut gains = [0.0; BANDS];
        for &(band, gain) in bands {
            gains[band] = gain;
        }
        gains
    }

    #[test]
    fn matches_the_formula_with_few_and_with_many_bands() {
        let input = music(0.5);
        let few = with_gains(&[(0, 0.2), (3, -0.1), (8, 0.25), (14, 0.3)]);
        let many = with_gains(
            &(0..12)
                .map(|b| (b, 0.05 * b as f32 - 0.2))
                .collect::<Vec<_>>(),
        );
        let all = [0.1; BANDS];
        for gains in [few, many, all] {
            let mut eq = Equalizer::new(&Params { gains });
            let mut out = input.clone();
            for frame in out.chunks_mut(1920) {
                eq.process(frame);
            }
            let worst = max_abs_diff(&out, &reference(&gains, &input));
            // f32 against f64: the low bands' poles sit close to the unit circle and amplify
            // rounding a little; a lane mixed up would be off by orders of magnitude more.
            assert!(worst < TOLERANCE, "{gains:?}: off by {worst}");
        }
    }

    #[test]
    fn the_portable_kernel_matches_the_formula_too() {
        // `process` picks the SIMD kernel where the CPU has one; run the other one directly.
        let input = music(0.3);
        let few = with_gains(&[(1, 0.3), (7, -0.2), (12, 0.5)]);
        let many = with_gains(
            &(2..15)
                .map(|b| (b, 0.04 * b as f32 - 0.25))
                .collect::<Vec<_>>(),
        );
        for (gains, wide) in [(few, false), (many, true)] {
            let mut eq = Equalizer::new(&Params { gains });
            assert_eq!(eq.count > BLOCK, wide);
            let lane_gains = eq.lane_gains();
            let mut out = input.clone();
            for frame in out.chunks_mut(1920) {
                if wide {
                    eq.bank.run::<LANES>(&lane_gains, frame);
                } else {
                    eq.bank.run::<{ 2 * BLOCK }>(&lane_gains, frame);
                }
            }
            let worst = max_abs_diff(&out, &reference(&gains, &input));
            assert!(worst < TOLERANCE, "{gains:?}: off by {worst}");
        }
    }

    #[test]
    fn bands_that_keep_running_keep_their_history_when_others_start() {
        // Four bands, then twelve: the lanes are laid out anew (two blocks to four). The four
        // must carry on as if nothing happened, so once the newcomers' gains are back at 0
        // the output is the four bands' own, with no jump where the layout changed.
        let input = music(1.0);
        let four = with_gains(&[(2, 0.2), (6, -0.1), (9, 0.25), (13, 0.3)]);
        let mut eq = Equalizer::new(&Params { gains: four });
        let mut out = input.clone();
        let (first, rest) = out.split_at_mut(19_200);
        eq.process(first);
        let mut twelve = four;
        for band in [0, 1, 3, 4, 5, 7, 8, 10] {
            twelve[band] = 0.1;
        }
        eq.set(&Params { gains: twelve });
        let (second, third) = rest.split_at_mut(1920);
        eq.process(second);
        // Straight back: the newcomers glide down to 0 and stop running again.
        eq.set(&Params { gains: four });
        for frame in third.chunks_mut(1920) {
            eq.process(frame);
        }
        let want = reference(&four, &input);
        let worst = |from: usize, to: usize| max_abs_diff(&out[from..to], &want[from..to]);
        // Before the change: the four bands exactly.
        assert!(worst(0, 19_200) < TOLERANCE);
        // Once the newcomers' glide down has ended (within the first call after the change
        // back; they stop running with the next): the four bands exactly again, which they can
        // only be if their state survived both relayouts.
        let settled = 19_200 + 2 * 1920;
        assert!(
            worst(settled, out.len()) < TOLERANCE,
            "{}",
            worst(settled, out.len())
        );
        // And in between, the newcomers did play.
        assert!(worst(19_200, settled) > 1e-3);
    }

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
