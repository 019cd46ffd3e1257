//! Audio analysis for tests: read what a piece of audio contains (dominant pitch, position in
//! the tone staircase, level, channel correlation, onset) and compare it with what the source
//! holds. Self-contained (std + symphonia's FFT) so benches can include it with `#[path]`.
//!
//! The FFT is symphonia's (`symphonia::core::dsp::fft`, power-of-two sizes up to 65536): it is
//! not generic, so it runs as optimised as the dependency was built. A generic FFT crate is
//! monomorphised into the unoptimised test crate instead (one 131072-point FFT took 0.3 s there,
//! which made a ten-format check take minutes).
//!
//! The reference signal is the tone *staircase*: second `k` (k = 0, 1, 2, …) is a sine of
//! `200 + 100·k` Hz at peak amplitude 0.5 on every channel (`tests/media/generate.sh` writes it
//! to files; [`staircase`] builds it in memory sample for sample the same way). Reading the pitch
//! of a window therefore tells which second of the source it came from.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use symphonia::core::dsp::complex::Complex;
use symphonia::core::dsp::fft::{Fft, Ifft, MAX_SIZE as FFT_MAX};

/// Pitch of the staircase's first second, in Hz.
pub const STAIRCASE_BASE_HZ: f64 = 200.0;
/// Pitch increase per second, in Hz.
pub const STAIRCASE_STEP_HZ: f64 = 100.0;
/// Peak amplitude of the staircase on each channel (−6.02 dBFS peak, −9.03 dBFS RMS).
pub const STAIRCASE_AMPLITUDE: f32 = 0.5;
/// Length of the generated staircase files, in seconds.
pub const STAIRCASE_SECONDS: usize = 10;
/// Below this RMS (−80 dBFS) a window counts as silence and has no pitch.
pub const SILENCE_RMS: f64 = 1e-4;

/// Interleaved f32 audio and its format.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    pub rate: u32,
    pub channels: usize,
    /// Interleaved samples, `frames() * channels` of them.
    pub samples: Vec<f32>,
}

impl Audio {
    pub fn new(rate: u32, channels: usize, samples: Vec<f32>) -> Audio {
        assert!(
            rate > 0 && channels > 0,
            "rate and channels must be positive"
        );
        assert_eq!(
            samples.len() % channels,
            0,
            "sample count is not a whole number of frames"
        );
        Audio {
            rate,
            channels,
            samples,
        }
    }

    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels
    }

    pub fn duration_s(&self) -> f64 {
        self.frames() as f64 / f64::from(self.rate)
    }

    /// One channel's samples.
    pub fn channel(&self, c: usize) -> Vec<f32> {
        assert!(c < self.channels, "channel {c} of {}", self.channels);
        self.samples
            .iter()
            .skip(c)
            .step_by(self.channels)
            .copied()
            .collect()
    }

    /// The average of all channels.
    pub fn mono(&self) -> Vec<f32> {
        let n = self.channels as f32;
        self.samples
            .chunks_exact(self.channels)
            .map(|f| f.iter().sum::<f32>() / n)
            .collect()
    }

    /// The part between `start_s` and `end_s` seconds (clamped to the audio).
    pub fn seconds(&self, start_s: f64, end_s: f64) -> Audio {
        let to_frame =
            |s: f64| ((s.max(0.0) * f64::from(self.rate)).round() as usize).min(self.frames());
        let (a, b) = (to_frame(start_s), to_frame(end_s.max(start_s)));
        Audio::new(
            self.rate,
            self.channels,
            self.samples[a * self.channels..b * self.channels].to_vec(),
        )
    }

    /// First frame where any channel's magnitude exceeds `threshold_dbfs` (e.g. −60.0).
    pub fn onset(&self, threshold_dbfs: f64) -> Option<usize> {
        onset(&self.samples, threshold_dbfs).map(|i| i / self.channels)
    }

    /// [`Audio::onset`] in seconds.
    pub fn onset_s(&self, threshold_dbfs: f64) -> Option<f64> {
        self.onset(threshold_dbfs)
            .map(|f| f as f64 / f64::from(self.rate))
    }
}

// ------------------------------------------------------------------------------------------------
// Reference signals

/// Pitch of staircase second `k`.
pub fn staircase_hz(k: usize) -> f64 {
    STAIRCASE_BASE_HZ + STAIRCASE_STEP_HZ * k as f64
}

/// The staircase step (second) a measured frequency belongs to: the nearest step when the
/// frequency lies within a quarter step (25 Hz) of it, otherwise `None`.
pub fn staircase_step(hz: f64) -> Option<usize> {
    let k = ((hz - STAIRCASE_BASE_HZ) / STAIRCASE_STEP_HZ).round();
    if !(0.0..10_000.0).contains(&k) {
        return None;
    }
    let k = k as usize;
    ((hz - staircase_hz(k)).abs() <= STAIRCASE_STEP_HZ / 4.0).then_some(k)
}

/// The staircase exactly as `generate.sh` writes it: `seconds` long, the same signal on every
/// channel, sample `n` of second `k` = 0.5·sin(2π·(200 + 100k)·(n/rate − k)).
pub fn staircase(rate: u32, channels: usize, seconds: f64) -> Audio {
    let frames = (seconds * f64::from(rate)).round() as usize;
    let r = u64::from(rate);
    let mut samples = Vec::with_capacity(frames * channels);
    for n in 0..frames as u64 {
        let (k, m) = (n / r, n % r);
        let phase = std::f64::consts::TAU * staircase_hz(k as usize) * (m as f64 / r as f64);
        let v = (f64::from(STAIRCASE_AMPLITUDE) * phase.sin()) as f32;
        samples.extend(std::iter::repeat_n(v, channels));
    }
    Audio::new(rate, channels, samples)
}

/// A sine of `hz` at peak `amplitude` on every channel.
pub fn sine(hz: f64, amplitude: f32, rate: u32, channels: usize, seconds: f64) -> Audio {
    let frames = (seconds * f64::from(rate)).round() as usize;
    let mut samples = Vec::with_capacity(frames * channels);
    for n in 0..frames {
        let v = amplitude * (std::f64::consts::TAU * hz * n as f64 / f64::from(rate)).sin() as f32;
        samples.extend(std::iter::repeat_n(v, channels));
    }
    Audio::new(rate, channels, samples)
}

// ------------------------------------------------------------------------------------------------
// Level

/// Root mean square of the samples.
pub fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        / samples.len() as f64)
        .sqrt()
}

/// `value` (an amplitude relative to full scale 1.0) in decibels; −∞ for 0.
pub fn to_db(value: f64) -> f64 {
    20.0 * value.log10()
}

/// RMS level in dBFS, relative to a full-scale square wave (a full-scale sine reads −3.01, the
/// staircase −9.03). −∞ for digital silence.
pub fn rms_dbfs(samples: &[f32]) -> f64 {
    to_db(rms(samples))
}

/// Peak level in dBFS.
pub fn peak_dbfs(samples: &[f32]) -> f64 {
    to_db(
        samples
            .iter()
            .fold(0.0f64, |m, &x| m.max(f64::from(x).abs())),
    )
}

/// Peak amplitude of the component at `hz` (a sine of amplitude A at exactly `hz` reads ≈ A,
/// other tones more than a few bins away read ≈ 0). A Hann-windowed single-bin DFT, so it
/// measures one tone within a mixture, e.g. the 1 kHz part of the karaoke signal.
pub fn tone_amplitude(samples: &[f32], rate: u32, hz: f64) -> f64 {
    let n = samples.len();
    if n < 2 {
        return 0.0;
    }
    let w = std::f64::consts::TAU * hz / f64::from(rate);
    let (mut re, mut im, mut wsum) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &x) in samples.iter().enumerate() {
        let win = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / (n - 1) as f64).cos();
        let v = f64::from(x) * win;
        re += v * (w * i as f64).cos();
        im -= v * (w * i as f64).sin();
        wsum += win;
    }
    2.0 * (re * re + im * im).sqrt() / wsum
}

/// [`tone_amplitude`] in dBFS (peak; a full-scale sine reads 0).
pub fn tone_dbfs(samples: &[f32], rate: u32, hz: f64) -> f64 {
    to_db(tone_amplitude(samples, rate, hz))
}

/// RMS of the part of the signal between `lo_hz` and `hi_hz`: Welch's method (Hann-windowed
/// segments of up to 8192 samples, half overlapping, periodograms averaged), so far-off
/// components leak less than −100 dB into a band, and the bands of a partition add up to the
/// total power. For equalizer, lowPass and noise-colour checks. Resolution: rate / 8192 (6 Hz
/// at 48 kHz).
pub fn band_rms(samples: &[f32], rate: u32, lo_hz: f64, hi_hz: f64) -> f64 {
    let n = samples.len();
    if n < 2 {
        return 0.0;
    }
    let seg = n.min(8192);
    let size = seg.next_power_of_two();
    let window: Vec<f32> = (0..seg)
        .map(|i| (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / seg as f64).cos()) as f32)
        .collect();
    let window_power: f64 = window.iter().map(|&w| f64::from(w) * f64::from(w)).sum();
    let bin_hz = f64::from(rate) / size as f64;
    let mut fft = Fft::new(size);
    let mut buf = vec![Complex::<f32>::default(); size];
    let (mut power, mut segments) = (0.0f64, 0usize);
    let mut start = 0;
    while start + seg <= n {
        for (i, c) in buf.iter_mut().enumerate() {
            *c = if i < seg {
                Complex::new(samples[start + i] * window[i], 0.0)
            } else {
                Complex::default()
            };
        }
        fft.fft_inplace(&mut buf);
        for (k, c) in buf.iter().enumerate() {
            // Bin k and its mirror size − k stand for the same frequency.
            let hz = k.min(size - k) as f64 * bin_hz;
            if hz >= lo_hz && hz < hi_hz {
                power += f64::from(c.re) * f64::from(c.re) + f64::from(c.im) * f64::from(c.im);
            }
        }
        segments += 1;
        start += seg / 2;
    }
    // Parseval: Σ|X_k|² = size · Σ|x_n w_n|², and Σ|x_n w_n|² / Σ w_n² estimates the mean square.
    (power / (size as f64 * window_power * segments as f64)).sqrt()
}

/// [`band_rms`] in dBFS.
pub fn band_dbfs(samples: &[f32], rate: u32, lo_hz: f64, hi_hz: f64) -> f64 {
    to_db(band_rms(samples, rate, lo_hz, hi_hz))
}

// ------------------------------------------------------------------------------------------------
// Pitch

/// Reusable FFT state for [`dominant_frequency`] over many windows of one length.
pub struct PitchDetector {
    rate: u32,
    len: usize,
    /// The samples analysed: the centre `used` of the `len` (all of them up to 65536).
    used: usize,
    fft_len: usize,
    window: Vec<f32>,
    fft: Fft,
    buf: Vec<Complex<f32>>,
}

impl PitchDetector {
    /// A detector for windows of `len` samples at `rate` Hz. The window (its centre 65536
    /// samples if longer) is Hann-windowed and zero-padded to up to four times the next power of
    /// two (at most 65536 points), and the peak refined by parabolic interpolation of the log
    /// magnitude: a 0.5 s window of a clean tone reads within 0.1 Hz.
    pub fn new(rate: u32, len: usize) -> PitchDetector {
        assert!(len >= 16, "window too short for a pitch");
        let used = len.min(FFT_MAX);
        let fft_len = (used.next_power_of_two() * 4).min(FFT_MAX);
        let window = (0..used)
            .map(|i| {
                (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / (used - 1) as f64).cos()) as f32
            })
            .collect();
        PitchDetector {
            rate,
            len,
            used,
            fft_len,
            window,
            fft: Fft::new(fft_len),
            buf: vec![Complex::default(); fft_len],
        }
    }

    /// The frequency of the strongest component above 20 Hz, or `None` for silence.
    pub fn detect(&mut self, samples: &[f32]) -> Option<f64> {
        assert_eq!(
            samples.len(),
            self.len,
            "window length differs from the detector's"
        );
        let start = (self.len - self.used) / 2;
        let samples = &samples[start..start + self.used];
        if rms(samples) < SILENCE_RMS {
            return None;
        }
        let mean =
            (samples.iter().map(|&x| f64::from(x)).sum::<f64>() / samples.len() as f64) as f32;
        for (i, c) in self.buf.iter_mut().enumerate() {
            *c = match samples.get(i) {
                Some(&x) => Complex::new((x - mean) * self.window[i], 0.0),
                None => Complex::default(),
            };
        }
        self.fft.fft_inplace(&mut self.buf);
        let bin_hz = f64::from(self.rate) / self.fft_len as f64;
        let lo = ((20.0 / bin_hz).ceil() as usize).max(1);
        let hi = self.fft_len / 2 - 1;
        let power = |c: &Complex<f32>| {
            f64::from(c.re) * f64::from(c.re) + f64::from(c.im) * f64::from(c.im)
        };
        let mut k = lo;
        let mut best = f64::MIN;
        for (i, c) in self.buf[lo..hi].iter().enumerate() {
            let p = power(c);
            if p > best {
                best = p;
                k = lo + i;
            }
        }
        // ln |X| = ½ ln |X|²
        let ln = |k: usize| 0.5 * power(&self.buf[k]).max(1e-60).ln();
        let (a, b, c) = (ln(k - 1), ln(k), ln(k + 1));
        let denom = a - 2.0 * b + c;
        let delta = if denom.abs() > 1e-12 {
            (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        Some((k as f64 + delta) * bin_hz)
    }
}

/// The dominant frequency of a mono window, or `None` for silence. See [`PitchDetector::new`].
pub fn dominant_frequency(samples: &[f32], rate: u32) -> Option<f64> {
    PitchDetector::new(rate, samples.len()).detect(samples)
}

/// One point of a [`pitch_track`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PitchPoint {
    /// Start of the window, in seconds from the first sample.
    pub time_s: f64,
    pub hz: Option<f64>,
}

/// Dominant frequency of consecutive windows of `window_s` seconds every `hop_s` seconds.
pub fn pitch_track(samples: &[f32], rate: u32, window_s: f64, hop_s: f64) -> Vec<PitchPoint> {
    let len = (window_s * f64::from(rate)).round() as usize;
    let hop = ((hop_s * f64::from(rate)).round() as usize).max(1);
    if samples.len() < len || len < 16 {
        return Vec::new();
    }
    let mut det = PitchDetector::new(rate, len);
    (0..=samples.len() - len)
        .step_by(hop)
        .map(|start| PitchPoint {
            time_s: start as f64 / f64::from(rate),
            hz: det.detect(&samples[start..start + len]),
        })
        .collect()
}

/// The pitch of each whole second of a staircase that starts at the first sample, measured on
/// the middle half of each second (0.25–0.75 s), so step boundaries and codec ringing near them
/// do not matter. Silent seconds give `None`.
pub fn staircase_pitches(samples: &[f32], rate: u32) -> Vec<Option<f64>> {
    let r = rate as usize;
    let (quarter, half) = (r / 4, r / 2);
    let mut det = PitchDetector::new(rate, half);
    (0..samples.len() / r)
        .map(|k| det.detect(&samples[k * r + quarter..k * r + quarter + half]))
        .collect()
}

/// [`staircase_pitches`] mapped to staircase steps: a clean, in-place staircase gives
/// `[Some(0), Some(1), …]`.
pub fn staircase_steps(samples: &[f32], rate: u32) -> Vec<Option<usize>> {
    staircase_pitches(samples, rate)
        .into_iter()
        .map(|p| p.and_then(staircase_step))
        .collect()
}

/// Where the pitch changes from one steady tone to another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PitchChange {
    /// Time of the change, in seconds from the first sample (resolution about 1 ms).
    pub time_s: f64,
    pub from_hz: f64,
    pub to_hz: f64,
}

/// The instants where a signal made of steady tones (a staircase, possibly sped up, slowed down
/// or pitch-shifted) jumps from one tone to the next.
///
/// Coarse: pitch of 100 ms windows every 25 ms, grouped into plateaus of agreeing windows.
/// Fine: between two plateaus, the instant `b` that maximises the amplitude of the old tone on
/// the 50 ms before `b` plus that of the new tone on the 50 ms after it.
pub fn pitch_changes(samples: &[f32], rate: u32) -> Vec<PitchChange> {
    let track = pitch_track(samples, rate, 0.1, 0.025);
    // Plateaus: runs of at least 3 windows within 2 % of the run's first window.
    let mut plateaus: Vec<(usize, usize, f64)> = Vec::new(); // (first index, last index, hz)
    let mut i = 0;
    while i < track.len() {
        let Some(f0) = track[i].hz else {
            i += 1;
            continue;
        };
        let mut j = i;
        while j + 1 < track.len() && track[j + 1].hz.is_some_and(|f| (f - f0).abs() <= 0.02 * f0) {
            j += 1;
        }
        if j - i >= 2 {
            let mut fs: Vec<f64> = track[i..=j].iter().filter_map(|p| p.hz).collect();
            fs.sort_by(f64::total_cmp);
            plateaus.push((i, j, fs[fs.len() / 2]));
        }
        i = j + 1;
    }
    let half = (0.05 * f64::from(rate)).round() as usize;
    let win = (0.1 * f64::from(rate)).round() as usize;
    if samples.len() < 2 * half {
        return Vec::new();
    }
    let mut changes = Vec::new();
    for pair in plateaus.windows(2) {
        let ((_, a_last, from_hz), (b_first, _, to_hz)) = (pair[0], pair[1]);
        // The change lies between the start of A's last window and the end of B's first.
        let lo = ((track[a_last].time_s * f64::from(rate)) as usize).max(half);
        let hi =
            ((track[b_first].time_s * f64::from(rate)) as usize + win).min(samples.len() - half);
        if lo >= hi {
            continue;
        }
        // Prefix sums of x[n]·e^{-iωn} for both tones over [lo − half, hi + half): the
        // amplitude of a tone on any sub-window is then a difference of two entries.
        let base = lo - half;
        let region = &samples[base..hi + half];
        let (from_sums, to_sums) = (
            phasor_prefix(region, rate, from_hz),
            phasor_prefix(region, rate, to_hz),
        );
        let amplitude = |sums: &[(f64, f64)], a: usize, b: usize| {
            let (re, im) = (sums[b].0 - sums[a].0, sums[b].1 - sums[a].1);
            2.0 * (re * re + im * im).sqrt() / (b - a) as f64
        };
        let mut best = (lo, f64::MIN);
        for b in lo..=hi {
            let i = b - base;
            let score = amplitude(&from_sums, i - half, i) + amplitude(&to_sums, i, i + half);
            if score > best.1 {
                best = (b, score);
            }
        }
        changes.push(PitchChange {
            time_s: best.0 as f64 / f64::from(rate),
            from_hz,
            to_hz,
        });
    }
    changes
}

/// Running sums of `x[n]·cos(ωn)` and `x[n]·sin(ωn)` (entry `i` covers `x[..i]`), for the
/// amplitude of a tone at `hz` on any window with a rectangular window: sharp in time, which is
/// what locating a change needs (staircase tones are orthogonal over 50 ms).
fn phasor_prefix(samples: &[f32], rate: u32, hz: f64) -> Vec<(f64, f64)> {
    let w = std::f64::consts::TAU * hz / f64::from(rate);
    let mut sums = Vec::with_capacity(samples.len() + 1);
    let (mut re, mut im) = (0.0f64, 0.0f64);
    sums.push((re, im));
    for (n, &x) in samples.iter().enumerate() {
        let (sin, cos) = (w * n as f64).sin_cos();
        re += f64::from(x) * cos;
        im += f64::from(x) * sin;
        sums.push((re, im));
    }
    sums
}

/// Where in the staircase a piece of its audio comes from: the staircase time, in seconds, of
/// the first sample. Found from the first step boundary (k → k+1) inside the audio, so it needs
/// a little more than one second of audio at normal speed; `None` without a boundary. Accurate
/// to a few milliseconds plus whatever delay the codec path adds.
pub fn staircase_position(samples: &[f32], rate: u32) -> Option<f64> {
    pitch_changes(samples, rate).into_iter().find_map(|c| {
        let (a, b) = (staircase_step(c.from_hz)?, staircase_step(c.to_hz)?);
        (b == a + 1).then_some(b as f64 - c.time_s)
    })
}

// ------------------------------------------------------------------------------------------------
// Comparison

/// Normalised correlation of two equally long signals at lag 0: 1 for identical shapes, −1 for
/// inverted ones, ≈ 0 for unrelated ones. 0 when either is silent.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa <= 0.0 || bb <= 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

/// Correlation of channel `a` with channel `b` (e.g. 0 and 1: L/R of a stereo signal).
pub fn channel_correlation(audio: &Audio, a: usize, b: usize) -> f64 {
    correlation(&audio.channel(a), &audio.channel(b))
}

/// How many samples `signal` lags `reference` (so `signal[n + lag] ≈ reference[n]`), searched in
/// `0..=max_lag` (less than 65536), and the normalised correlation at that lag. Block-wise FFT
/// cross-correlation over the whole reference.
pub fn delay(reference: &[f32], signal: &[f32], max_lag: usize) -> Option<(usize, f64)> {
    if reference.is_empty() || signal.is_empty() {
        return None;
    }
    let max_lag = max_lag.min(signal.len() - 1);
    assert!(max_lag < FFT_MAX - 1, "delay searches lags below {FFT_MAX}");
    // Correlating a block of B reference samples with B + max_lag signal samples needs no
    // wrap-around in an FFT of size ≥ B + max_lag.
    let size = (reference.len() + max_lag).next_power_of_two().min(FFT_MAX);
    let block = size - max_lag;
    let (mut fft, mut ifft) = (Fft::new(size), Ifft::new(size));
    let mut corr = vec![0.0f64; max_lag + 1];
    let (mut a, mut b) = (
        vec![Complex::<f32>::default(); size],
        vec![Complex::<f32>::default(); size],
    );
    for start in (0..reference.len()).step_by(block) {
        if start >= signal.len() {
            break;
        }
        let r = &reference[start..(start + block).min(reference.len())];
        let s = &signal[start..(start + block + max_lag).min(signal.len())];
        for (i, (x, y)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
            *x = Complex::new(r.get(i).copied().unwrap_or(0.0), 0.0);
            *y = Complex::new(s.get(i).copied().unwrap_or(0.0), 0.0);
        }
        fft.fft_inplace(&mut a);
        fft.fft_inplace(&mut b);
        // corr[lag] = Σ r[i] · s[i + lag]  ⇔  IFFT(conj(R) · S)
        for (x, y) in a.iter_mut().zip(&b) {
            *x = x.conj() * y;
        }
        ifft.ifft_inplace(&mut a);
        for (c, x) in corr.iter_mut().zip(&a) {
            *c += f64::from(x.re);
        }
    }
    let mut lag = 0;
    for (i, &c) in corr.iter().enumerate() {
        if c > corr[lag] {
            lag = i;
        }
    }
    Some((lag, correlation(reference, &signal[lag..])))
}

/// Index of the first sample whose magnitude exceeds `threshold_dbfs` (e.g. −60.0).
pub fn onset(samples: &[f32], threshold_dbfs: f64) -> Option<usize> {
    let t = 10f64.powf(threshold_dbfs / 20.0);
    samples.iter().position(|&x| f64::from(x).abs() > t)
}

// ------------------------------------------------------------------------------------------------
// WAV files

/// Writes 32-bit float WAV (for looking at a failing test's audio in an editor).
pub fn write_wav(path: &Path, audio: &Audio) -> io::Result<()> {
    let data_len = u32::try_from(audio.samples.len() * 4)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "audio too long for WAV"))?;
    let channels = u16::try_from(audio.channels)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many channels for WAV"))?;
    let mut out = Vec::with_capacity(58 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(50 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&18u32.to_le_bytes());
    out.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&audio.rate.to_le_bytes());
    out.extend_from_slice(&(audio.rate * 4 * u32::from(channels)).to_le_bytes());
    out.extend_from_slice(&(4 * channels).to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // cbSize
    out.extend_from_slice(b"fact");
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&(audio.frames() as u32).to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &audio.samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::File::create(path)?.write_all(&out)
}

/// Writes `audio` as `<name>.wav` under the tests' scratch directory and returns the path, for
/// attaching to a failure message.
pub fn dump_wav(name: &str, audio: &Audio) -> PathBuf {
    let dir = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join("audio-dumps").join(format!("{name}.wav"));
    let written = std::fs::create_dir_all(path.parent().expect("has a parent"))
        .and_then(|()| write_wav(&path, audio));
    if let Err(e) = written {
        eprintln!("could not write {}: {e}", path.display());
    }
    path
}

/// Reads a PCM (8/16/24/32-bit integer) or float (32/64-bit) WAV, plain or
/// WAVE_FORMAT_EXTENSIBLE. A `data` size larger than the file is cut to what is there.
pub fn read_wav(path: &Path) -> io::Result<Audio> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    parse_wav(&bytes)
}

fn parse_wav(bytes: &[u8]) -> io::Result<Audio> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a usable WAV: {what}"),
        )
    };
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let mut fmt: Option<(u16, usize, u32, usize)> = None; // (format, channels, rate, bits)
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            if size < 16 || body + 16 > bytes.len() {
                return Err(bad("short fmt chunk"));
            }
            let mut format = u16_at(body);
            if format == 0xFFFE && size >= 40 && body + 26 <= bytes.len() {
                format = u16_at(body + 24); // first two bytes of the sub-format GUID
            }
            fmt = Some((
                format,
                u16_at(body + 2) as usize,
                u32_at(body + 4),
                u16_at(body + 14) as usize,
            ));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.ok_or_else(|| bad("data before fmt"))?;
            if channels == 0 || rate == 0 {
                return Err(bad("zero channels or rate"));
            }
            let data = &bytes[body..(body + size).min(bytes.len())];
            let width = bits.div_ceil(8);
            let frame = width * channels;
            let data = &data[..data.len() - data.len() % frame.max(1)];
            let samples: Vec<f32> = match (format, width) {
                (1, 1) => data
                    .iter()
                    .map(|&b| (f32::from(b) - 128.0) / 128.0)
                    .collect(),
                (1, 2) => data
                    .chunks_exact(2)
                    .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                    .collect(),
                (1, 3) => data
                    .chunks_exact(3)
                    .map(|c| (i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8) as f32 / 8_388_608.0)
                    .collect(),
                (1, 4) => data
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32 / 2_147_483_648.0)
                    .collect(),
                (3, 4) => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                (3, 8) => data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect(),
                _ => {
                    return Err(bad(&format!(
                        "unsupported format {format} with {bits} bits"
                    )));
                }
            };
            return Ok(Audio::new(rate, channels, samples));
        }
        pos = body + size + (size & 1);
    }
    Err(bad("no data chunk"))
}
