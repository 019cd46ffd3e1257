//! Reading the test staircase back from what reached the fake Discord server. The server
//! decrypts and decodes every packet and measures each window of the decoded audio (pitch from
//! zero crossings, RMS level); here those windows become "which second of the staircase is
//! this" (second k of the source is a 200 + 100·k Hz tone).
//!
//! Times are seconds into the guild's current stream: packet n starts at n × 20 ms of its
//! decoded audio, so a packet count read when the client acted marks that moment in the audio.

use std::fmt::Write;

use serde_json::Value;

const FRAME_S: f64 = 0.02;
const SILENT_DBFS: f64 = -45.0;

pub struct Window {
    pub start_s: f64,
    pub hz: Option<f64>,
    /// None for digital silence (the server writes -inf, which JSON carries as null).
    pub rms_dbfs: Option<f64>,
}

/// The windows of a `report` answer's `analysis`.
pub fn windows(report: &Value) -> Vec<Window> {
    report["analysis"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| Window {
                    start_s: w["start_s"].as_f64().unwrap_or(0.0),
                    hz: w["frequency_hz"].as_f64(),
                    rms_dbfs: w["rms_dbfs"].as_f64(),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Reading {
    Step(u32),
    Silence,
    /// Sound that is no step at this pitch factor.
    Unknown,
}

pub struct Run {
    pub reading: Reading,
    pub seconds: f64,
    pub at: f64,
}

/// Staircase step of a frequency (pitch-shifted by `factor`), or None when it is no step.
pub fn step_of(hz: f64, factor: f64) -> Option<u32> {
    let base = hz / factor;
    let k = ((base - 200.0) / 100.0).round();
    if !(0.0..=9.0).contains(&k) {
        return None;
    }
    ((base - (200.0 + 100.0 * k)).abs() <= 6.0).then_some(k as u32)
}

fn silent(w: &Window) -> bool {
    w.rms_dbfs.is_none_or(|db| db < SILENT_DBFS)
}

/// Runs of equal readings over windows starting in [from_s, to_s).
pub fn runs(ws: &[Window], from_s: f64, to_s: f64, factor: f64) -> Vec<Run> {
    let len = if ws.len() > 1 {
        ws[1].start_s - ws[0].start_s
    } else {
        0.1
    };
    let mut out: Vec<Run> = Vec::new();
    for w in ws
        .iter()
        .filter(|w| w.start_s >= from_s - 1e-9 && w.start_s < to_s - 1e-9)
    {
        let reading = if silent(w) {
            Reading::Silence
        } else {
            w.hz.and_then(|hz| step_of(hz, factor))
                .map_or(Reading::Unknown, Reading::Step)
        };
        match out.last_mut() {
            Some(last) if last.reading == reading => last.seconds += len,
            _ => out.push(Run {
                reading,
                seconds: len,
                at: w.start_s,
            }),
        }
    }
    out
}

/// The sounding steps in order: runs of at least `min_s` seconds, a step interrupted by a short
/// unreadable stretch counted once.
pub fn steps(runs: &[Run], min_s: f64) -> Vec<u32> {
    let mut out = Vec::new();
    for r in runs {
        if let Reading::Step(k) = r.reading
            && r.seconds >= min_s - 1e-9
            && out.last() != Some(&k)
        {
            out.push(k);
        }
    }
    out
}

/// Seconds of windows that read as a step.
pub fn step_seconds(runs: &[Run]) -> f64 {
    runs.iter()
        .filter(|r| matches!(r.reading, Reading::Step(_)))
        .map(|r| r.seconds)
        .sum()
}

/// The runs as text for failure messages: "0×1.0@0.0 1×1.0@1.0 silence×0.1@2.0 …".
pub fn describe(runs: &[Run]) -> String {
    let mut s = String::new();
    for r in runs {
        let what = match r.reading {
            Reading::Step(k) => k.to_string(),
            Reading::Silence => "silence".into(),
            Reading::Unknown => "?".into(),
        };
        let _ = write!(s, "{what}×{:.1}@{:.1} ", r.seconds, r.at);
    }
    s.trim_end().to_owned()
}

/// Mean RMS level (dBFS, averaged as power) of the non-silent windows in [from_s, to_s).
pub fn level(ws: &[Window], from_s: f64, to_s: f64) -> Option<f64> {
    let p: Vec<f64> = ws
        .iter()
        .filter(|w| w.start_s >= from_s - 1e-9 && w.start_s < to_s - 1e-9 && !silent(w))
        .map(|w| 10f64.powf(w.rms_dbfs.unwrap_or(-200.0) / 10.0))
        .collect();
    (!p.is_empty()).then(|| 10.0 * (p.iter().sum::<f64>() / p.len() as f64).log10())
}

/// Seconds of audio before packet `n` of the stream.
pub fn at_packet(n: u64) -> f64 {
    n as f64 * FRAME_S
}

/// Lavalink's player volume curve: the gain (dB) of volume `v` (0..1000) as the node applies it.
pub fn volume_gain_db(v: f64) -> f64 {
    let m = if v <= 150.0 {
        ((v * 0.0079).tan() * 10000.0).trunc()
    } else {
        (24621.0 * v / 150.0).trunc()
    };
    20.0 * (m / 10000.0).log10()
}

/// The gain (dB) of Lavalink's `volume` filter at `v` (0..5): tan(0.79·v) up to 1.5.
pub fn volume_filter_gain_db(v: f64) -> f64 {
    let k = if v <= 1.5 {
        (0.79 * v).tan()
    } else {
        1.6408 * v
    };
    20.0 * k.log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_curves() {
        assert_eq!(step_of(700.0, 1.0), Some(5));
        assert_eq!(step_of(1050.0, 1.5), Some(5));
        assert_eq!(step_of(750.0, 1.0), None);
        assert!((volume_gain_db(50.0) + 7.60).abs() < 0.01);
        assert!((volume_filter_gain_db(0.5) + 7.60).abs() < 0.01);
    }
}
