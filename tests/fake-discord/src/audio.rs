//! Measurements on decoded audio, for tests that play known signals: the frequency of a tone
//! (from interpolated zero crossings, exact enough for pure tones) and its level in dBFS.

use serde::{Deserialize, Serialize};

/// Level and pitch of one stretch of audio.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ToneStats {
    /// Start of the stretch, seconds from the start of the PCM.
    pub start_s: f64,
    /// Estimated frequency in Hz; `None` for silence or too few crossings.
    pub frequency_hz: Option<f64>,
    /// RMS level relative to full scale (a full-scale sine is -3.01 dBFS).
    pub rms_dbfs: f64,
    /// Peak absolute sample relative to full scale.
    pub peak_dbfs: f64,
}

/// Mixes interleaved stereo down to mono `f64` samples in -1..1.
pub fn to_mono(stereo: &[i16]) -> Vec<f64> {
    stereo
        .chunks_exact(2)
        .map(|c| (c[0] as f64 + c[1] as f64) / 2.0 / 32768.0)
        .collect()
}

/// Measures one mono stretch sampled at `rate`.
pub fn measure(mono: &[f64], rate: f64) -> ToneStats {
    let n = mono.len().max(1) as f64;
    let rms = (mono.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
    let peak = mono.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let db = |v: f64| {
        if v > 0.0 {
            20.0 * v.log10()
        } else {
            f64::NEG_INFINITY
        }
    };
    ToneStats {
        start_s: 0.0,
        frequency_hz: if rms < 1e-4 {
            None
        } else {
            frequency(mono, rate)
        },
        rms_dbfs: db(rms),
        peak_dbfs: db(peak),
    }
}

/// Frequency from the spacing of rising zero crossings, interpolated between samples.
fn frequency(mono: &[f64], rate: f64) -> Option<f64> {
    let mut first = None;
    let mut last = 0.0;
    let mut count = 0u64;
    for i in 1..mono.len() {
        let (a, b) = (mono[i - 1], mono[i]);
        if a < 0.0 && b >= 0.0 {
            let t = (i - 1) as f64 + a / (a - b);
            if first.is_none() {
                first = Some(t);
            } else {
                count += 1;
            }
            last = t;
        }
    }
    let first = first?;
    (count >= 2).then(|| count as f64 * rate / (last - first))
}

/// Splits interleaved 48 kHz stereo into windows of `window_s` seconds and measures each.
pub fn analyze(stereo: &[i16], window_s: f64) -> Vec<ToneStats> {
    let mono = to_mono(stereo);
    let len = ((window_s * 48_000.0) as usize).max(1);
    mono.chunks(len)
        .enumerate()
        .filter(|(_, c)| c.len() * 2 >= len)
        .map(|(i, c)| ToneStats {
            start_s: i as f64 * window_s,
            ..measure(c, 48_000.0)
        })
        .collect()
}

/// Index of the first stereo frame whose absolute value exceeds `threshold` (0..1), as seconds.
pub fn onset_seconds(stereo: &[i16], threshold: f64) -> Option<f64> {
    let t = (threshold * 32768.0) as i32;
    stereo
        .chunks_exact(2)
        .position(|c| (c[0] as i32).abs() > t || (c[1] as i32).abs() > t)
        .map(|i| i as f64 / 48_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, amp: f64, secs: f64) -> Vec<i16> {
        let n = (secs * 48_000.0) as usize;
        (0..n)
            .flat_map(|i| {
                let v = (amp
                    * 32767.0
                    * (2.0 * std::f64::consts::PI * freq * i as f64 / 48_000.0).sin())
                    as i16;
                [v, v]
            })
            .collect()
    }

    #[test]
    fn measures_a_sine() {
        let s = measure(&to_mono(&sine(440.0, 0.5, 1.0)), 48_000.0);
        let f = s.frequency_hz.unwrap();
        assert!((f - 440.0).abs() < 0.5, "{f}");
        // 0.5 amplitude sine: 20*log10(0.5/sqrt(2)) = -9.03 dBFS
        assert!((s.rms_dbfs + 9.03).abs() < 0.05, "{}", s.rms_dbfs);
        assert!((s.peak_dbfs + 6.02).abs() < 0.05, "{}", s.peak_dbfs);
    }

    #[test]
    fn windows_follow_a_staircase() {
        let mut pcm = sine(220.0, 0.3, 1.0);
        pcm.extend(sine(660.0, 0.3, 1.0));
        let w = analyze(&pcm, 0.5);
        assert_eq!(w.len(), 4);
        for (stat, want) in w.iter().zip([220.0, 220.0, 660.0, 660.0]) {
            let f = stat.frequency_hz.unwrap();
            assert!((f - want).abs() < 2.0, "{f} vs {want}");
        }
        assert!((w[3].start_s - 1.5).abs() < 1e-9);
    }

    #[test]
    fn silence_has_no_frequency_and_onset_is_found() {
        let mut pcm = vec![0i16; 4800 * 2];
        assert_eq!(measure(&to_mono(&pcm), 48_000.0).frequency_hz, None);
        pcm.extend(sine(1000.0, 0.5, 0.1));
        let onset = onset_seconds(&pcm, 0.1).unwrap();
        assert!((onset - 0.1).abs() < 0.001, "{onset}");
    }
}
