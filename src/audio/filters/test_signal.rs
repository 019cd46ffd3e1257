//! Test support: synthetic stereo signals and the measurements the filter tests make on them
//! (levels in dB, envelopes, zero-crossing frequency, modulation rate, step size).

use std::f64::consts::TAU;

use super::FilterChain;
use crate::protocol::filters::Filters;

pub const FS: f64 = 48_000.0;

/// A 20 ms frame, the block size a player hands the chain.
pub const BLOCK_FRAMES: usize = 960;

/// Parsed, not validated: the chain must cope with whatever reaches it.
pub fn filters(json: &str) -> Filters {
    serde_json::from_str(json).expect("test filter JSON")
}

pub fn chain(json: &str) -> FilterChain {
    FilterChain::new(&filters(json))
}

/// Run `input` through a fresh chain in 20 ms blocks.
pub fn run(f: &Filters, input: &[f32]) -> Vec<f32> {
    let mut c = FilterChain::new(f);
    let mut out = Vec::new();
    for block in input.chunks(2 * BLOCK_FRAMES) {
        c.process(block, &mut out);
    }
    out
}

/// One sample of a unit sine at `freq` Hz, time `t` seconds.
pub fn tone(freq: f64, t: f64) -> f32 {
    (TAU * freq * t).sin() as f32
}

/// `secs` seconds of interleaved stereo from one function of time per channel.
pub fn stereo(l: impl Fn(f64) -> f32, r: impl Fn(f64) -> f32, secs: f64) -> Vec<f32> {
    let frames = (secs * FS).round() as usize;
    (0..frames)
        .flat_map(|i| {
            let t = i as f64 / FS;
            [l(t), r(t)]
        })
        .collect()
}

/// The same sine on both channels (centre-panned).
pub fn sine(freq: f64, amp: f32, secs: f64) -> Vec<f32> {
    stereo(|t| amp * tone(freq, t), |t| amp * tone(freq, t), secs)
}

pub fn left(buf: &[f32]) -> Vec<f32> {
    buf.iter().step_by(2).copied().collect()
}

pub fn right(buf: &[f32]) -> Vec<f32> {
    buf.iter().skip(1).step_by(2).copied().collect()
}

pub fn rms(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
}

/// Level of `measured` relative to `reference`, in dB.
pub fn gain_db(reference: &[f32], measured: &[f32]) -> f64 {
    20.0 * (rms(measured) / rms(reference)).log10()
}

/// RMS level per block of `block` samples.
pub fn envelope(x: &[f32], block: usize) -> Vec<f64> {
    x.chunks_exact(block).map(rms).collect()
}

pub fn min_max(x: &[f64]) -> (f64, f64) {
    x.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// How often the series crosses its own mean: twice per cycle of a periodic modulation.
pub fn mean_crossings(x: &[f64]) -> usize {
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    x.windows(2)
        .filter(|w| (w[0] - mean).signum() != (w[1] - mean).signum())
        .count()
}

/// Pearson correlation of two series.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// Frequency of a (near) pure tone from its rising zero crossings, located to a fraction of a
/// sample by linear interpolation.
pub fn zero_crossing_frequency(x: &[f32]) -> f64 {
    let crossings: Vec<f64> = x
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + (w[0] / (w[0] - w[1])) as f64)
        .collect();
    match (crossings.first(), crossings.last()) {
        (Some(a), Some(b)) if crossings.len() > 1 => (crossings.len() - 1) as f64 * FS / (b - a),
        _ => 0.0,
    }
}

/// Zero-crossing frequency per block of `block` samples.
pub fn frequency_track(x: &[f32], block: usize) -> Vec<f64> {
    x.chunks_exact(block).map(zero_crossing_frequency).collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// The largest jump between neighbouring samples of one channel.
pub fn max_step(x: &[f32]) -> f32 {
    x.windows(2).fold(0.0, |m, w| m.max((w[1] - w[0]).abs()))
}
