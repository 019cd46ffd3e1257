//! timescale: tempo and pitch. `speed` changes the tempo and keeps the pitch, `pitch` changes the
//! pitch and keeps the tempo, and `rate` resamples, changing both together like a tape played
//! faster. Overall the music plays `speed·rate` times as fast and sounds `pitch·rate` times as
//! high; it is also the only filter whose output length differs from its input
//! (`1/(speed·rate)` frames out per frame in).
//!
//! Two stages, each created only when needed, in this order:
//! * **stretch** (speed, pitch): a phase-vocoder time stretcher and pitch shifter, Signalsmith
//!   Stretch (MIT), in its "cheaper" configuration. It analyses overlapping 100 ms blocks
//!   every 40 ms (the default, 120 ms every 30 ms, costs 1.5× as much; the tests below
//!   measure the same pitch, tempo and level with either), spreading each block's work over the calls in between so no
//!   one 20 ms frame pays for a whole block; it moves each spectral peak to
//!   its new frequency keeping phases coherent between blocks, and resynthesises at the new
//!   tempo. Handing it `n` input frames and asking for `n/speed` output frames gives the tempo;
//!   its transpose factor gives the pitch. It adds about 140 ms of latency, and a stretcher
//!   that has just been created fades in over that time.
//! * **rate**: band-limited resampling with `rubato`'s sinc resampler (64 taps, squared
//!   Blackman–Harris window, a 256-step table read with linear interpolation, anti-alias
//!   cut-off set for the ratio), output rate / input rate = `1/rate`, in
//!   480-frame chunks. Its filter delay is compensated, so it adds no latency beyond chunking.
//!
//! Hot swaps: a changed speed or pitch is handed to the running stretcher, which applies it from
//! its next block (a speed change is seamless; a pitch jump on a pure tone shows a brief dip of
//! a few dB while the overlapping blocks of old and new pitch cross-fade).
//! A changed rate rebuilds the resampler (the anti-alias filter depends on the ratio); the new
//! one is primed with the last few hundred frames it would have seen and its output is aligned
//! to where the old one stopped, so the sound continues without a gap or a jump. Once a stage
//! exists it stays for as long as the timescale filter is active, even if its factor returns
//! to 1, because removing it would skip or repeat its buffered audio.
//!
//! Active when any factor ≠ 1; a factor ≤ 0 turns the whole filter off (it has no meaning).
//! Factors are clamped to [1/8, 8] (three octaves either way), which bounds the work and the
//! output size per input frame.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};
use signalsmith_stretch::Stretch;

use super::{SAMPLE_RATE, WORK_FRAMES};
use crate::protocol::filters::Timescale as Config;

pub(super) const MIN_FACTOR: f64 = 0.125;
pub(super) const MAX_FACTOR: f64 = 8.0;
/// Resampler input chunk (10 ms).
const CHUNK: usize = 480;
const SINC_LEN: usize = 64;
/// Sinc table points per input sample; linear interpolation between them.
const OVERSAMPLING: usize = 256;
/// Frames of resampler input remembered for priming a rebuilt resampler: covers the delay of
/// the old one plus the run-in of the new one at the most extreme ratios (64/(1/8) each).
const HISTORY: usize = 1152;

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

pub(super) struct Timescale {
    p: Params,
    stretch: Option<Stretcher>,
    resample: Option<Rate>,
    /// Resampler input not consumed yet, interleaved.
    fifo: Vec<f32>,
    /// The last `HISTORY` frames that went into the resampling stage (or that would have, when
    /// there is none yet), interleaved, oldest first.
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
            fifo: Vec::new(),
            history: Vec::with_capacity(2 * HISTORY),
        };
        if p.speed != 1.0 || p.pitch != 1.0 {
            t.stretch = Some(Stretcher::new(p.speed, p.pitch));
        }
        if p.rate != 1.0 {
            t.resample = Rate::new(1.0 / p.rate, None);
        }
        t.reserve();
        t
    }

    pub(super) fn set(&mut self, p: &Params) {
        match &mut self.stretch {
            Some(s) => s.set(p.speed, p.pitch),
            None if p.speed != 1.0 || p.pitch != 1.0 => {
                self.stretch = Some(Stretcher::new(p.speed, p.pitch));
            }
            None => {}
        }
        if p.rate != self.p.rate {
            self.rebuild_resampler(1.0 / p.rate);
        }
        self.p = *p;
        self.reserve();
    }

    pub(super) fn reset(&mut self) {
        if let Some(s) = &mut self.stretch {
            s.reset();
        }
        self.fifo.clear();
        self.history.clear();
        if let Some(r) = &mut self.resample {
            r.restart();
        }
    }

    /// Source time consumed per output time.
    pub(super) fn time_ratio(&self) -> f64 {
        self.p.speed * self.p.rate
    }

    /// Grow the buffers to what one call with `WORK_FRAMES` input frames needs.
    fn reserve(&mut self) {
        let stretched = (WORK_FRAMES as f64 / self.p.speed).ceil() as usize + 1;
        let frames = stretched + CHUNK + HISTORY;
        self.fifo
            .reserve((2 * frames).saturating_sub(self.fifo.len()));
    }

    /// Replace the resampler by one for `ratio` (output/input), primed so that its first
    /// output frame continues exactly where the previous stage left off.
    fn rebuild_resampler(&mut self, ratio: f64) {
        let history_frames = (self.history.len() / 2) as f64;
        // How far behind the end of `history` the next output frame lies, in input frames.
        let lag = self.resample.as_ref().map_or(0.0, Rate::lag);
        let start = (history_frames - lag).clamp(0.0, history_frames);
        let run_in = SINC_LEN as f64 / 2.0 + 2.0;
        let first = (start - run_in).floor().max(0.0);
        let Some(rate) = Rate::new(ratio, Some((start - first) * ratio)) else {
            return;
        };
        // Feed the remembered frames again, ahead of what is waiting.
        let first = first as usize * 2;
        let mut fifo = Vec::with_capacity(self.fifo.capacity() + self.history.len() - first);
        fifo.extend_from_slice(&self.history[first..]);
        fifo.extend_from_slice(&self.fifo);
        self.fifo = fifo;
        self.history.truncate(first);
        self.resample = Some(rate);
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
                s.process(input, &mut self.fifo);
                r.drain(&mut self.fifo, &mut self.history, out);
            }
            (None, Some(r)) => {
                self.fifo.extend_from_slice(input);
                r.drain(&mut self.fifo, &mut self.history, out);
            }
            (None, None) => {
                out.extend_from_slice(input);
                remember(&mut self.history, input);
            }
        }
    }
}

/// Keep the last `HISTORY` frames of everything passed here, without growing past that.
fn remember(history: &mut Vec<f32>, new: &[f32]) {
    let cap = 2 * HISTORY;
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

/// The speed/pitch stage.
struct Stretcher {
    inner: Stretch,
    speed: f64,
    pitch: f64,
    /// Fraction of an output frame owed from earlier calls.
    owed: f64,
}

impl Stretcher {
    fn new(speed: f64, pitch: f64) -> Self {
        let mut inner = Stretch::preset_cheaper(2, SAMPLE_RATE as u32);
        inner.set_transpose_factor(pitch as f32, None);
        Stretcher {
            inner,
            speed,
            pitch,
            owed: 0.0,
        }
    }

    /// New factors take effect from the stretcher's next analysis block. (Gliding the pitch in
    /// steps was tried: on a pure tone it makes the overlapping blocks beat longer and deeper
    /// than one jump does.)
    fn set(&mut self, speed: f64, pitch: f64) {
        if pitch != self.pitch {
            self.inner.set_transpose_factor(pitch as f32, None);
            self.pitch = pitch;
        }
        self.speed = speed;
    }

    fn reset(&mut self) {
        self.inner.reset();
        self.owed = 0.0;
    }

    fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let exact = (input.len() / 2) as f64 / self.speed + self.owed;
        let frames = exact.floor();
        self.owed = exact - frames;
        let start = out.len();
        out.resize(start + 2 * frames as usize, 0.0);
        self.inner.process(input, &mut out[start..]);
    }
}

/// The rate stage: a sinc resampler fed in fixed chunks from the timescale's FIFO.
struct Rate {
    inner: Async<f32>,
    /// Output rate / input rate.
    ratio: f64,
    /// Output frames still to drop: the filter's run-in.
    discard: usize,
    /// Input frames fed and output frames produced (dropped ones included) since creation.
    fed: u64,
    produced: u64,
}

impl Rate {
    /// A resampler for `ratio`. With `aligned = Some(j)`, the caller primes it with earlier
    /// input such that output frame `j` (before the filter delay) is the one to continue with;
    /// with `None` it starts on fresh input and only its filter delay is dropped.
    fn new(ratio: f64, aligned: Option<f64>) -> Option<Self> {
        let params = SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2)
            .oversampling_factor(OVERSAMPLING)
            .interpolation(SincInterpolationType::Linear);
        let inner =
            Async::<f32>::new_sinc(ratio, 1.0, &params, CHUNK, 2, FixedAsync::Input).ok()?;
        let delay = inner.output_delay() as f64;
        let discard = (aligned.unwrap_or(0.0) + delay).round().max(0.0) as usize;
        Some(Rate {
            inner,
            ratio,
            discard,
            fed: 0,
            produced: 0,
        })
    }

    /// Forget all input, as if just created without priming.
    fn restart(&mut self) {
        self.inner.reset();
        self.discard = self.inner.output_delay();
        self.fed = 0;
        self.produced = 0;
    }

    /// Input frames between the end of what was fed and the next frame to be output.
    fn lag(&self) -> f64 {
        let next_out =
            (self.produced + self.discard as u64) as f64 - self.inner.output_delay() as f64;
        (self.fed as f64 - next_out / self.ratio).max(0.0)
    }

    /// Resample every whole chunk waiting in `fifo`, appending to `out`.
    fn drain(&mut self, fifo: &mut Vec<f32>, history: &mut Vec<f32>, out: &mut Vec<f32>) {
        loop {
            let need = self.inner.input_frames_next();
            if fifo.len() < 2 * need {
                return;
            }
            let room = self.inner.output_frames_next();
            let start = out.len();
            out.resize(start + 2 * room, 0.0);
            let done = match (
                InterleavedSlice::new(&fifo[..2 * need], 2, need),
                InterleavedSlice::new_mut(&mut out[start..], 2, room),
            ) {
                (Ok(input), Ok(mut output)) => self
                    .inner
                    .process_into_buffer(&input, &mut output, None)
                    .ok(),
                _ => None,
            };
            let Some((used, made)) = done else {
                // Cannot happen with the sizes asked for above; drop the input rather than spin.
                out.truncate(start);
                fifo.clear();
                return;
            };
            self.fed += used as u64;
            self.produced += made as u64;
            let drop = self.discard.min(made);
            self.discard -= drop;
            out.copy_within(start + 2 * drop..start + 2 * made, start);
            out.truncate(start + 2 * (made - drop));
            remember(history, &fifo[..2 * used]);
            fifo.copy_within(2 * used.., 0);
            fifo.truncate(fifo.len() - 2 * used);
        }
    }
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

    #[test]
    fn speed_changes_the_length_and_keeps_the_pitch() {
        let (n, out, f) = stretch(r#"{"timescale":{"speed":1.5}}"#, 440.0, 3.0);
        let expected = n as f64 / 1.5;
        assert!(
            (out.len() as f64 / 2.0 - expected).abs() <= 1.0,
            "{} frames",
            out.len() / 2
        );
        assert!((f - 440.0).abs() < 440.0 * 0.005, "{f} Hz");
        let (n, out, f) = stretch(r#"{"timescale":{"speed":0.75}}"#, 440.0, 2.0);
        assert!((out.len() as f64 / 2.0 - n as f64 / 0.75).abs() <= 1.0);
        assert!((f - 440.0).abs() < 440.0 * 0.005, "{f} Hz");
    }

    #[test]
    fn pitch_changes_the_pitch_and_keeps_the_length() {
        let (n, out, f) = stretch(r#"{"timescale":{"pitch":1.5}}"#, 440.0, 3.0);
        assert_eq!(out.len() / 2, n);
        assert!((f - 660.0).abs() < 660.0 * 0.005, "{f} Hz");
    }

    #[test]
    fn rate_changes_both() {
        let (n, out, f) = stretch(r#"{"timescale":{"rate":1.5}}"#, 440.0, 3.0);
        let expected = n as f64 / 1.5;
        // Chunking holds back at most one chunk of input.
        let frames = out.len() as f64 / 2.0;
        assert!(
            frames <= expected + 1.0 && frames > expected - CHUNK as f64,
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
        let frames = out.len() as f64 / 2.0;
        let expected = n as f64 / 0.96;
        assert!(
            (frames - expected).abs() < 2.0 * CHUNK as f64,
            "{frames} vs {expected}"
        );
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
