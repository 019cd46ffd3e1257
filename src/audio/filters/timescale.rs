//! timescale: tempo and pitch. `speed` changes the tempo and keeps the pitch, `pitch` changes the
//! pitch and keeps the tempo, and `rate` resamples, changing both together like a tape played
//! faster. Overall the music plays `speed·rate` times as fast and sounds `pitch·rate` times as
//! high; it is also the only filter whose output length differs from its input
//! (`1/(speed·rate)` frames out per frame in).
//!
//! As in SoundTouch (Lavalink's timescale), two stages, each created only when needed:
//! * **tempo**: a WSOLA time stretcher (see `wsola`) at tempo `speed / pitch`, which keeps the
//!   pitch;
//! * **resampling** (see `varispeed`) by `pitch · rate`, which scales tempo and pitch alike.
//!
//! Together: tempo `speed/pitch · pitch·rate = speed·rate`, pitch `pitch·rate`. The stretcher
//! holds back up to one sequence plus its seek window of input (about 110 ms, released
//! sequence by sequence); the resampler only its look-ahead.
//!
//! Hot swaps: a changed tempo applies from the stretcher's next sequence; a changed resampling
//! ratio continues from the resampler's current position with new weights. Neither leaves a
//! gap or a jump. Once a stage exists it stays for as long as the timescale filter is active,
//! even if its factor returns to 1, because removing it would skip or repeat its buffered
//! audio.
//!
//! Active when any factor ≠ 1; a factor ≤ 0 turns the whole filter off (it has no meaning).
//! Factors are clamped to [1/8, 8] (three octaves either way), which bounds the work and the
//! output size per input frame.

use super::WORK_FRAMES;
use super::varispeed::{KEEP, Varispeed};
use super::wsola::Wsola;
use crate::protocol::filters::Timescale as Config;

pub(super) const MIN_FACTOR: f64 = 0.125;
pub(super) const MAX_FACTOR: f64 = 8.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    pub(super) speed: f64,
    pub(super) pitch: f64,
    pub(super) rate: f64,
}

pub(super) fn params(cfg: &Option<Config>) -> Option<Params> {
    let t = cfg.as_ref()?;
    // `> 0.0` is false for NaN as well.
    if !(t.speed > 0.0 && t.pitch > 0.0 && t.rate > 0.0) {
        return None;
    }
    if t.speed == 1.0 && t.pitch == 1.0 && t.rate == 1.0 {
        return None;
    }
    let clamp = |v: f64| v.clamp(MIN_FACTOR, MAX_FACTOR);
    Some(Params {
        speed: clamp(t.speed),
        pitch: clamp(t.pitch),
        rate: clamp(t.rate),
    })
}

impl Params {
    /// Tempo of the WSOLA stage: the resampling stage speeds up by `pitch · rate`, so the
    /// stretcher makes up the rest of the overall tempo `speed · rate`.
    fn stretch_tempo(&self) -> f64 {
        self.speed / self.pitch
    }

    /// Output rate / input rate of the resampling stage (below 1 raises the pitch).
    fn resample_ratio(&self) -> f64 {
        1.0 / (self.pitch * self.rate)
    }

    /// Builds the resampling stage's weights ahead of time (see `FilterChain::prepare`).
    pub(super) fn prepare(&self) {
        let ratio = self.resample_ratio();
        if ratio != 1.0 {
            super::varispeed::prepare(ratio);
        }
    }
}

pub(super) struct Timescale {
    p: Params,
    stretch: Option<Wsola>,
    resample: Option<Varispeed>,
    /// The stretcher's output on its way to the resampler.
    stretched: Vec<f32>,
    /// While there is no resampler: the last frames that would have gone into one, so that
    /// one created later starts with the right history.
    history: Vec<f32>,
}

impl std::fmt::Debug for Timescale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timescale")
            .field("params", &self.p)
            .field("stretch", &self.stretch.is_some())
            .field("resample", &self.resample.is_some())
            .finish()
    }
}

impl Timescale {
    pub(super) fn new(p: &Params) -> Self {
        let mut t = Timescale {
            p: *p,
            stretch: None,
            resample: None,
            stretched: Vec::new(),
            history: Vec::with_capacity(2 * KEEP),
        };
        if p.stretch_tempo() != 1.0 {
            t.stretch = Some(Wsola::new(p.stretch_tempo()));
        }
        if p.resample_ratio() != 1.0 {
            t.resample = Some(Varispeed::new(p.resample_ratio(), &[]));
        }
        t.reserve();
        t
    }

    pub(super) fn set(&mut self, p: &Params) {
        let tempo = p.stretch_tempo();
        match &mut self.stretch {
            Some(s) => s.set(tempo),
            None if tempo != 1.0 => self.stretch = Some(Wsola::new(tempo)),
            None => {}
        }
        let ratio = p.resample_ratio();
        match &mut self.resample {
            Some(r) if ratio != self.p.resample_ratio() => r.set_ratio(ratio),
            Some(_) => {}
            None if ratio != 1.0 => {
                self.resample = Some(Varispeed::new(ratio, &self.history));
                self.history.clear();
            }
            None => {}
        }
        self.p = *p;
        self.reserve();
    }

    pub(super) fn reset(&mut self) {
        if let Some(s) = &mut self.stretch {
            s.reset();
        }
        if let Some(r) = &mut self.resample {
            r.reset();
        }
        self.history.clear();
    }

    /// Source time consumed per output time.
    pub(super) fn time_ratio(&self) -> f64 {
        self.p.speed * self.p.rate
    }

    /// Grow the buffer between the stages to what one call with `WORK_FRAMES` input frames
    /// needs, including what the stretcher may release from earlier calls.
    fn reserve(&mut self) {
        if self.stretch.is_some() && self.resample.is_some() {
            let held = WORK_FRAMES / 4;
            let frames = ((WORK_FRAMES + held) as f64 / self.p.stretch_tempo()).ceil() as usize;
            let samples = 2 * (frames + held);
            self.stretched
                .reserve(samples.saturating_sub(self.stretched.len()));
        }
    }

    /// Process interleaved stereo `input`, appending the result to `out`.
    pub(super) fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        match (&mut self.stretch, &mut self.resample) {
            (Some(s), None) => {
                let start = out.len();
                s.process(input, out);
                remember(&mut self.history, &out[start..]);
            }
            (Some(s), Some(r)) => {
                self.stretched.clear();
                s.process(input, &mut self.stretched);
                r.process(&self.stretched, out);
            }
            (None, Some(r)) => r.process(input, out),
            (None, None) => {
                out.extend_from_slice(input);
                remember(&mut self.history, input);
            }
        }
    }
}

/// Keep the last `KEEP` frames of everything passed here, without growing past that.
fn remember(history: &mut Vec<f32>, new: &[f32]) {
    let cap = 2 * KEEP;
    if new.len() >= cap {
        history.clear();
        history.extend_from_slice(&new[new.len() - cap..]);
        return;
    }
    let keep = (cap - new.len()).min(history.len());
    let drop = history.len() - keep;
    history.copy_within(drop.., 0);
    history.truncate(keep);
    history.extend_from_slice(new);
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;
    use super::*;

    /// Run `secs` of a `freq` tone through a timescale config; return (input frames, output,
    /// dominant frequency of the settled output).
    fn stretch(json: &str, freq: f64, secs: f64) -> (usize, Vec<f32>, f64) {
        let input = sine(freq, 0.5, secs);
        let out = run(&filters(json), &input);
        // Skip the stretcher's fade-in, and the tail where its latency leaves no input.
        let l = left(&out);
        let settled = &l[l.len() / 4..l.len() * 3 / 4];
        (input.len() / 2, out, zero_crossing_frequency(settled))
    }

    /// Asserts that `frames` output frames are what `input` frames at overall tempo `tempo`
    /// give, short by no more than the stretcher (at `stretch_tempo`) and the resampler hold
    /// back: at most a sequence plus a seek window (110 ms) of the stretcher's input, and a
    /// chunk of the resampler's.
    fn assert_length(frames: usize, input: usize, tempo: f64, stretch_tempo: f64) {
        let expected = input as f64 / tempo;
        let held = 5280.0 / tempo + KEEP as f64 * stretch_tempo / tempo;
        let frames = frames as f64;
        assert!(
            frames <= expected + 1.0 && frames >= expected - held,
            "{frames} frames, {expected} expected"
        );
    }

    #[test]
    fn speed_changes_the_length_and_keeps_the_pitch() {
        let (n, out, f) = stretch(r#"{"timescale":{"speed":1.5}}"#, 440.0, 3.0);
        assert_length(out.len() / 2, n, 1.5, 1.5);
        assert!((f - 440.0).abs() < 440.0 * 0.005, "{f} Hz");
        let (n, out, f) = stretch(r#"{"timescale":{"speed":0.75}}"#, 440.0, 2.0);
        assert_length(out.len() / 2, n, 0.75, 0.75);
        assert!((f - 440.0).abs() < 440.0 * 0.005, "{f} Hz");
    }

    #[test]
    fn pitch_changes_the_pitch_and_keeps_the_length() {
        let (n, out, f) = stretch(r#"{"timescale":{"pitch":1.5}}"#, 440.0, 3.0);
        assert_length(out.len() / 2, n, 1.0, 1.0 / 1.5);
        assert!((f - 660.0).abs() < 660.0 * 0.005, "{f} Hz");
    }

    #[test]
    fn rate_changes_both() {
        let (n, out, f) = stretch(r#"{"timescale":{"rate":1.5}}"#, 440.0, 3.0);
        let expected = n as f64 / 1.5;
        // Chunking holds back at most one chunk of input.
        let frames = out.len() as f64 / 2.0;
        assert!(
            frames <= expected + 1.0 && frames > expected - KEEP as f64,
            "{frames}"
        );
        assert!((f - 660.0).abs() < 660.0 * 0.002, "{f} Hz");
        // Resampling adds no latency: the tone starts at once, at full level.
        let l = left(&out);
        assert!(rms(&l[480..960]) > 0.3);
    }

    #[test]
    fn rate_keeps_the_pass_band_and_removes_what_would_alias() {
        let level = |json: &str, freq: f64| {
            let input = sine(freq, 0.5, 1.0);
            let out = run(&filters(json), &input);
            let l = left(&out);
            // Past the resampler's run-in, short of the chunk held back at the end.
            20.0 * (rms(&l[4800..l.len() - 4800]) / rms(&left(&input))).log10()
        };
        // 1 kHz → 1.5 kHz at the same level; 10 kHz → 15 kHz still in the pass band.
        let low = level(r#"{"timescale":{"rate":1.5}}"#, 1000.0);
        let high = level(r#"{"timescale":{"rate":1.5}}"#, 10_000.0);
        assert!(low.abs() < 0.1 && high.abs() < 0.5, "{low} dB, {high} dB");
        // 18 kHz → 27 kHz is above 24 kHz: it must be filtered out, not folded to 21 kHz.
        let over = level(r#"{"timescale":{"rate":1.5}}"#, 18_000.0);
        assert!(
            over < -60.0,
            "{over} dB left of a tone that cannot be represented"
        );
    }

    #[test]
    fn all_three_combine() {
        // Tempo speed·rate = 1.2·0.8 = 0.96, pitch pitch·rate = 1.25·0.8 = 1.
        let (n, out, f) = stretch(
            r#"{"timescale":{"speed":1.2,"pitch":1.25,"rate":0.8}}"#,
            500.0,
            3.0,
        );
        assert_length(out.len() / 2, n, 0.96, 1.2 / 1.25);
        assert!((f - 500.0).abs() < 500.0 * 0.005, "{f} Hz");
        assert!(
            (chain(r#"{"timescale":{"speed":1.2,"pitch":1.25,"rate":0.8}}"#).time_ratio() - 0.96)
                .abs()
                < 1e-12
        );
    }

    #[test]
    fn factors_of_one_or_below_zero_are_off() {
        assert!(!chain(r#"{"timescale":{}}"#).is_active());
        assert!(!chain(r#"{"timescale":{"speed":2,"rate":0}}"#).is_active());
        assert!(!chain(r#"{"timescale":{"pitch":-1}}"#).is_active());
        assert_eq!(chain(r#"{"timescale":{"pitch":-1}}"#).time_ratio(), 1.0);
        assert_eq!(
            chain(r#"{"timescale":{"speed":1000}}"#).time_ratio(),
            MAX_FACTOR
        );
    }

    #[test]
    fn a_rate_change_continues_without_a_gap() {
        let mut c = chain(r#"{"timescale":{"rate":1.25}}"#);
        let input = sine(300.0, 0.5, 2.0);
        let mut out = Vec::new();
        for (i, block) in input.chunks(1920).enumerate() {
            if i == 40 {
                c.update(&filters(r#"{"timescale":{"rate":0.8}}"#));
            }
            c.process(block, &mut out);
        }
        let l = left(&out);
        // No silent stretch anywhere after the start...
        let env = envelope(&l[960..l.len() - 960], 96);
        let (lo, _) = min_max(&env);
        assert!(lo > 0.25, "level dropped to {lo}");
        // ...and no jump: the largest step stays that of the highest tone (375 Hz).
        let step = max_step(&l);
        let limit = 0.5 * std::f64::consts::TAU * 375.0 / 48000.0;
        assert!(step < 1.5 * limit as f32, "step {step}");
    }
}
