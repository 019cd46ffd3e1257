//! The Lavalink filter chain of one player: the ten built-in filters as pure DSP on 48 kHz
//! interleaved stereo f32 in [-1, 1].
//!
//! The signal passes the filters in Lavalink's order: lowPass → channelMix → rotation →
//! distortion → vibrato → tremolo → timescale → karaoke → equalizer → volume (then, outside this
//! module, the player volume and Opus). Only *active* filters are built and run, each by its own
//! rule (see its module); a configured but inactive filter costs nothing and does not colour
//! the sound. (Lavalink instead runs every configured filter once any is active, so an
//! all-default distortion there turns the signal into sin²; we deliberately do not.)
//!
//! Every filter accepts any finite parameters without panicking or producing NaN or infinity:
//! out-of-domain values are clamped or turn the filter off, the input is sanitised on entry
//! (NaN → 0, clamp to [-1, 1]) so that no filter state can be poisoned, and so is the output.
//!
//! `process` allocates nothing once its buffers have reached their working size; `new` and
//! `update` reserve them for inputs of up to `WORK_FRAMES` frames.

mod channel_mix;
mod distortion;
mod equalizer;
mod glide;
mod karaoke;
mod lfo;
mod low_pass;
mod rotation;
mod timescale;
mod tremolo;
mod varispeed;
mod vibrato;
mod volume;
mod wsola;

#[cfg(test)]
mod chain_tests;
#[cfg(test)]
mod test_signal;

use crate::protocol::filters::Filters;

use channel_mix::ChannelMix;
use distortion::Distortion;
use equalizer::Equalizer;
use karaoke::Karaoke;
use low_pass::LowPass;
use rotation::Rotation;
use timescale::Timescale;
use tremolo::Tremolo;
use vibrato::Vibrato;
use volume::Volume;

/// The sample rate every filter works at.
pub const SAMPLE_RATE: f64 = 48_000.0;

/// Input frames per `process` call that `new`/`update` reserve buffers for (100 ms; a player
/// normally passes 20 ms).
pub const WORK_FRAMES: usize = 4_800;

/// A filter that turns each frame into one frame, in place.
trait InPlace: Sized {
    /// The filter's settings, clamped and checked; only built for an active filter.
    type Params;
    fn new(p: &Self::Params) -> Self;
    /// New settings for a running filter (hot swap): keep the state that still applies.
    fn set(&mut self, p: &Self::Params);
    /// Forget history (after a seek).
    fn reset(&mut self);
    /// Filter interleaved stereo samples in place.
    fn process(&mut self, buf: &mut [f32]);
}

/// NaN → 0, everything else clamped to [-1, 1].
#[inline]
fn clamp_unit(x: f32) -> f32 {
    if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) }
}

fn sanitize(buf: &mut [f32]) {
    for s in buf {
        *s = clamp_unit(*s);
    }
}

/// Bring one filter slot in line with its new settings: update it, create it, or drop it.
fn sync<F: InPlace>(slot: &mut Option<F>, p: Option<F::Params>) {
    match (slot.as_mut(), p) {
        (Some(f), Some(p)) => f.set(&p),
        (None, Some(p)) => *slot = Some(F::new(&p)),
        (_, None) => *slot = None,
    }
}

fn run_slot<F: InPlace>(slot: &mut Option<F>, buf: &mut [f32]) {
    if let Some(f) = slot {
        f.process(buf);
    }
}

fn reset_slot<F: InPlace>(slot: &mut Option<F>) {
    if let Some(f) = slot {
        f.reset();
    }
}

/// The filter chain for one player, 48 kHz interleaved stereo f32 in [-1, 1].
#[derive(Debug, Default)]
pub struct FilterChain {
    low_pass: Option<LowPass>,
    channel_mix: Option<ChannelMix>,
    rotation: Option<Rotation>,
    distortion: Option<Distortion>,
    vibrato: Option<Vibrato>,
    tremolo: Option<Tremolo>,
    timescale: Option<Timescale>,
    karaoke: Option<Karaoke>,
    equalizer: Option<Equalizer>,
    volume: Option<Volume>,
    /// The signal before the timescale filter, when there is one.
    scratch: Vec<f32>,
}

impl FilterChain {
    pub fn new(filters: &Filters) -> Self {
        let mut chain = FilterChain::default();
        chain.update(filters);
        chain
    }

    /// Builds the shared tables a chain for `filters` will need (the timescale's resampling
    /// weights, about a millisecond for a ratio not in use), so that the audio worker that
    /// builds the chain finds them ready instead of computing them inside its frame loop.
    /// Blocking work: call it off the async runtime.
    pub fn prepare(filters: &Filters) {
        if let Some(p) = timescale::params(&filters.timescale) {
            p.prepare();
        }
    }

    /// True if `filters` has at least one active filter, i.e. a chain built from it would not
    /// be bypassed. Cheap: builds nothing.
    pub fn would_be_active(filters: &Filters) -> bool {
        low_pass::params(&filters.low_pass).is_some()
            || channel_mix::params(&filters.channel_mix).is_some()
            || rotation::params(&filters.rotation).is_some()
            || distortion::params(&filters.distortion).is_some()
            || vibrato::params(&filters.vibrato).is_some()
            || tremolo::params(&filters.tremolo).is_some()
            || timescale::params(&filters.timescale).is_some()
            || karaoke::params(&filters.karaoke).is_some()
            || equalizer::params(&filters.equalizer).is_some()
            || volume::params(filters.volume).is_some()
    }

    /// Replace the configuration mid-track (hot swap). A filter that stays active keeps its
    /// state (phases, delay lines, filter history) and glides gain changes, so the change does
    /// not click; a newly active filter starts fresh; a filter that turns inactive is dropped.
    pub fn update(&mut self, filters: &Filters) {
        sync(&mut self.low_pass, low_pass::params(&filters.low_pass));
        sync(
            &mut self.channel_mix,
            channel_mix::params(&filters.channel_mix),
        );
        sync(&mut self.rotation, rotation::params(&filters.rotation));
        sync(
            &mut self.distortion,
            distortion::params(&filters.distortion),
        );
        sync(&mut self.vibrato, vibrato::params(&filters.vibrato));
        sync(&mut self.tremolo, tremolo::params(&filters.tremolo));
        match (&mut self.timescale, timescale::params(&filters.timescale)) {
            (Some(t), Some(p)) => t.set(&p),
            (slot @ None, Some(p)) => *slot = Some(Timescale::new(&p)),
            (slot, None) => *slot = None,
        }
        sync(&mut self.karaoke, karaoke::params(&filters.karaoke));
        sync(&mut self.equalizer, equalizer::params(&filters.equalizer));
        sync(&mut self.volume, volume::params(filters.volume));
        if self.timescale.is_some() {
            self.scratch
                .reserve((2 * WORK_FRAMES).saturating_sub(self.scratch.len()));
        }
    }

    /// True if at least one filter is active. When false the caller bypasses the chain
    /// entirely (and `process` would copy its input unchanged).
    pub fn is_active(&self) -> bool {
        self.low_pass.is_some()
            || self.channel_mix.is_some()
            || self.rotation.is_some()
            || self.distortion.is_some()
            || self.vibrato.is_some()
            || self.tremolo.is_some()
            || self.timescale.is_some()
            || self.karaoke.is_some()
            || self.equalizer.is_some()
            || self.volume.is_some()
    }

    /// Process interleaved stereo samples. Output is appended to `out` (the timescale filter
    /// changes the number of samples; all others are 1:1). A trailing odd sample (half a
    /// frame) is ignored. Does not allocate once `out` and the internal buffers have grown to
    /// their working size.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let input = &input[..input.len() & !1];
        if !self.is_active() {
            out.extend_from_slice(input);
            return;
        }
        let start = out.len();
        if self.timescale.is_some() {
            let mut pre = std::mem::take(&mut self.scratch);
            pre.clear();
            pre.extend_from_slice(input);
            sanitize(&mut pre);
            self.pre_timescale(&mut pre);
            if let Some(timescale) = &mut self.timescale {
                timescale.process(&pre, out);
            }
            self.scratch = pre;
        } else {
            out.extend_from_slice(input);
            sanitize(&mut out[start..]);
            self.pre_timescale(&mut out[start..]);
        }
        let buf = &mut out[start..];
        run_slot(&mut self.karaoke, buf);
        run_slot(&mut self.equalizer, buf);
        run_slot(&mut self.volume, buf);
        sanitize(buf);
    }

    fn pre_timescale(&mut self, buf: &mut [f32]) {
        run_slot(&mut self.low_pass, buf);
        run_slot(&mut self.channel_mix, buf);
        run_slot(&mut self.rotation, buf);
        run_slot(&mut self.distortion, buf);
        run_slot(&mut self.vibrato, buf);
        run_slot(&mut self.tremolo, buf);
    }

    /// Source time consumed per output time (= speed × rate of the timescale, 1.0 otherwise);
    /// the player uses it to advance the reported position.
    pub fn time_ratio(&self) -> f64 {
        self.timescale.as_ref().map_or(1.0, Timescale::time_ratio)
    }

    /// Forget history (delay lines, biquad state, stretcher buffers) after a seek.
    pub fn reset(&mut self) {
        reset_slot(&mut self.low_pass);
        reset_slot(&mut self.channel_mix);
        reset_slot(&mut self.rotation);
        reset_slot(&mut self.distortion);
        reset_slot(&mut self.vibrato);
        reset_slot(&mut self.tremolo);
        if let Some(t) = &mut self.timescale {
            t.reset();
        }
        reset_slot(&mut self.karaoke);
        reset_slot(&mut self.equalizer);
        reset_slot(&mut self.volume);
    }
}
