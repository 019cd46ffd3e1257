//! Sample-rate conversion of decoded stereo to 48 kHz, fed and drained through FIFOs so that
//! decoder packet sizes and the encoder's 20 ms frames need not match. The ratio of a track
//! never changes: `resamplingQuality: LOW` uses the polyphase filter of [`super::polyphase`]
//! where the ratio allows (sources below 48 kHz with a small-fraction ratio: 44.1 kHz and
//! its relatives, every divisor of 48 kHz); everything else uses rubato's FFT resampler.
//!
//! The resampler's start-up delay is discarded and its tail flushed at the end of the track, so
//! output sample `n` lines up with input time `n / 48000` s: positions and seeks stay exact.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _, WindowFunction};

use super::fifo::StereoFifo;
use super::pipeline::AudioError;
use super::polyphase::Polyphase;
use crate::config::ResamplingQuality;

/// The output rate of the whole pipeline.
pub(crate) const OUTPUT_RATE: u32 = 48_000;

/// One 20 ms frame at 48 kHz, per channel.
pub(crate) const FRAME_SAMPLES: usize = 960;

/// FFT block sizing and anti-aliasing window for each `resamplingQuality`.
///
/// Larger blocks put the anti-aliasing cutoff closer to Nyquist; the squared windows attenuate
/// the stop band further. The cost difference is small (the FFT grows as `n log n`).
fn parameters(quality: ResamplingQuality) -> (usize, usize, WindowFunction) {
    // (output chunk in frames, sub-chunks per chunk, window)
    match quality {
        // Blocks of about 240 output frames, Hann²: cheapest, cutoff a little lower.
        ResamplingQuality::Low => (FRAME_SAMPLES, 4, WindowFunction::Hann2),
        // One 20 ms block, Blackman-Harris.
        ResamplingQuality::Medium => (FRAME_SAMPLES, 1, WindowFunction::BlackmanHarris),
        // 40 ms blocks, squared Blackman-Harris: the flattest pass band, the deepest stop band.
        ResamplingQuality::High => (2 * FRAME_SAMPLES, 1, WindowFunction::BlackmanHarris2),
    }
}

/// Converts one source rate to 48 kHz stereo.
pub(crate) struct Resampler48k {
    engine: Engine,
    rate: u32,
    /// Source-rate stereo waiting to be resampled.
    input: StereoFifo,
    /// Real input frames pushed since the last reset.
    in_total: u64,
    /// Output frames handed on since the last reset.
    out_total: u64,
}

enum Engine {
    Polyphase(Polyphase),
    Fft {
        inner: Box<Fft<f32>>,
        /// One chunk of output (interleaved).
        scratch: Vec<f32>,
        /// Output frames still to discard (the resampler's delay) since the last reset.
        skip_out: usize,
    },
}

impl Resampler48k {
    pub(crate) fn new(rate: u32, quality: ResamplingQuality) -> Result<Self, AudioError> {
        let polyphase = match quality {
            ResamplingQuality::Low => Polyphase::new(rate),
            ResamplingQuality::Medium | ResamplingQuality::High => None,
        };
        let (engine, capacity) = match polyphase {
            Some(p) => (Engine::Polyphase(p), 8192),
            None => {
                let (chunk, sub_chunks, window) = parameters(quality);
                let inner = Fft::<f32>::new_custom(
                    rate as usize,
                    OUTPUT_RATE as usize,
                    chunk,
                    sub_chunks,
                    2,
                    window,
                    FixedSync::Output,
                )
                .map_err(|e| AudioError::Unsupported(format!("cannot resample {rate} Hz: {e}")))?;
                let capacity = inner.input_frames_max() * 2 + 8192;
                let scratch = vec![0.0; inner.output_frames_max() * 2];
                let skip_out = inner.output_delay();
                let engine = Engine::Fft {
                    inner: Box::new(inner),
                    scratch,
                    skip_out,
                };
                (engine, capacity)
            }
        };
        let mut resampler = Resampler48k {
            engine,
            rate,
            input: StereoFifo::with_capacity(capacity),
            in_total: 0,
            out_total: 0,
        };
        resampler.reset();
        Ok(resampler)
    }

    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// Room for `frames` more source frames (interleaved stereo), to be filled by the caller.
    pub(crate) fn input_tail(&mut self, frames: usize) -> &mut [f32] {
        self.in_total += frames as u64;
        self.input.tail_mut(frames)
    }

    /// Resamples all the input it can, appending 48 kHz stereo to `out`.
    pub(crate) fn process(&mut self, out: &mut StereoFifo) -> Result<(), AudioError> {
        match &mut self.engine {
            Engine::Polyphase(p) => {
                self.out_total += p.process(&mut self.input, out, usize::MAX) as u64;
            }
            Engine::Fft { .. } => {
                while self.input.frames() >= self.fft_input_next() {
                    self.run_chunk(None, out, u64::MAX)?;
                }
            }
        }
        Ok(())
    }

    /// End of input: resamples what is left and flushes the resampler's tail, so that exactly
    /// `input frames × 48000 / rate` frames (rounded up) came out in total.
    pub(crate) fn finish(&mut self, out: &mut StereoFifo) -> Result<(), AudioError> {
        self.process(out)?;
        let expected = (self.in_total * OUTPUT_RATE as u64).div_ceil(self.rate as u64);
        match &mut self.engine {
            Engine::Polyphase(p) => {
                self.input.push_silence(p.tail_frames());
                let room = expected.saturating_sub(self.out_total) as usize;
                self.out_total += p.process(&mut self.input, out, room) as u64;
            }
            Engine::Fft { .. } => {
                // Each round produces a full chunk; bound the loop all the same.
                let mut rounds = 0;
                while self.out_total < expected && rounds < 64 {
                    let partial = self.input.frames().min(self.fft_input_next());
                    self.run_chunk(Some(partial), out, expected)?;
                    rounds += 1;
                }
            }
        }
        self.input.clear();
        Ok(())
    }

    /// Forgets all state (after a seek).
    pub(crate) fn reset(&mut self) {
        self.input.clear();
        self.in_total = 0;
        self.out_total = 0;
        match &mut self.engine {
            Engine::Polyphase(p) => p.reset(&mut self.input),
            Engine::Fft {
                inner, skip_out, ..
            } => {
                inner.reset();
                *skip_out = inner.output_delay();
            }
        }
    }

    /// Input frames the FFT resampler's next chunk takes.
    fn fft_input_next(&self) -> usize {
        match &self.engine {
            Engine::Fft { inner, .. } => inner.input_frames_next(),
            Engine::Polyphase(_) => usize::MAX,
        }
    }

    /// One FFT chunk (a partial one at the end).
    fn run_chunk(
        &mut self,
        partial: Option<usize>,
        out: &mut StereoFifo,
        cap_total: u64,
    ) -> Result<(), AudioError> {
        let Engine::Fft {
            inner,
            scratch,
            skip_out,
        } = &mut self.engine
        else {
            return Ok(());
        };
        let need = inner.input_frames_next();
        let available = partial.unwrap_or(need);
        let indexing = Indexing {
            partial_len: partial,
            ..Indexing::default()
        };
        let frames_out = inner.output_frames_next();
        let input = InterleavedSlice::new(self.input.samples(), 2, available)
            .map_err(|e| AudioError::Decode(format!("resampler input: {e}")))?;
        let mut output = InterleavedSlice::new_mut(&mut scratch[..frames_out * 2], 2, frames_out)
            .map_err(|e| AudioError::Decode(format!("resampler output: {e}")))?;
        let (_, produced) = inner
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| AudioError::Decode(format!("resampler: {e}")))?;
        self.input.consume(available);

        let skip = (*skip_out).min(produced);
        *skip_out -= skip;
        let room = cap_total.saturating_sub(self.out_total);
        let keep = ((produced - skip) as u64).min(room) as usize;
        out.push(&scratch[skip * 2..(skip + keep) * 2]);
        self.out_total += keep as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, frames: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let v = (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5;
                [v, v]
            })
            .collect()
    }

    fn run(rate: u32, quality: ResamplingQuality, input: &[f32], chunk: usize) -> Vec<f32> {
        let mut r = Resampler48k::new(rate, quality).unwrap();
        let mut out = StereoFifo::with_capacity(0);
        for piece in input.chunks(chunk * 2) {
            r.input_tail(piece.len() / 2).copy_from_slice(piece);
            r.process(&mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        out.samples().to_vec()
    }

    /// Zero crossings per second of the left channel.
    fn frequency(samples: &[f32]) -> f32 {
        let left: Vec<f32> = samples.iter().step_by(2).copied().collect();
        let crossings = left
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        crossings as f32 / 2.0 / (left.len() as f32 / OUTPUT_RATE as f32)
    }

    #[test]
    fn length_pitch_and_alignment_are_kept_for_each_quality() {
        for quality in [
            ResamplingQuality::Low,
            ResamplingQuality::Medium,
            ResamplingQuality::High,
        ] {
            for (rate, chunk) in [
                (44_100, 1152),
                (22_050, 1024),
                (96_000, 4096),
                (11_025, 333),
            ] {
                let input = tone(rate, 1000.0, rate as usize); // one second
                let out = run(rate, quality, &input, chunk);
                assert_eq!(out.len() / 2, 48_000, "{rate} Hz {quality:?}");
                let f = frequency(&out[4800..out.len() - 4800]);
                assert!((f - 1000.0).abs() < 3.0, "{rate} Hz {quality:?}: {f} Hz");
                // No start-up delay: the sine starts at once (its first peak is at 0.25 ms).
                let peak = out[..48]
                    .iter()
                    .step_by(2)
                    .fold(0f32, |m, v| m.max(v.abs()));
                assert!(peak > 0.4, "{rate} Hz {quality:?}: delayed start ({peak})");
                assert!(out.iter().all(|v| v.is_finite()));
            }
        }
    }

    /// Level (dB re full scale sine) of `hz` in the left channel, by correlation.
    fn level_db(samples: &[f32], hz: f64) -> f64 {
        let left: Vec<f32> = samples.iter().step_by(2).copied().collect();
        let w = 2.0 * std::f64::consts::PI * hz / f64::from(OUTPUT_RATE);
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &v) in left.iter().enumerate() {
            // Hann-weighted, so that a strong tone does not leak into a weak one's bin.
            let hann =
                0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / left.len() as f64).cos();
            re += f64::from(v) * hann * (w * i as f64).cos();
            im += f64::from(v) * hann * (w * i as f64).sin();
        }
        let amplitude = 4.0 * (re * re + im * im).sqrt() / left.len() as f64;
        20.0 * amplitude.max(1e-12).log10()
    }

    #[test]
    fn low_quality_is_exact_in_time_flat_in_band_and_rejects_images() {
        // (source rate, tone, where the tone's image would fold to at 48 kHz, lowest level the
        // tone may come out at: flat in the band, the roll-off begins at 86 % of the source's
        // Nyquist frequency)
        for (rate, hz, image, floor_db) in [
            (44_100, 1_000.0, 4_900.0, -0.1),
            (44_100, 10_000.0, 13_900.0, -0.1),
            (44_100, 17_000.0, 20_900.0, -0.1),
            (44_100, 19_000.0, 22_900.0, -3.0),
            (22_050, 5_000.0, 17_050.0, -0.1),
            (32_000, 9_000.0, 23_000.0, -0.1),
            (8_000, 1_000.0, 7_000.0, -0.1),
        ] {
            let input = tone(rate, hz as f32, rate as usize);
            let out = run(rate, ResamplingQuality::Low, &input, 1152);
            assert_eq!(out.len() / 2, 48_000, "{rate} Hz");
            let body = &out[9600..out.len() - 9600];
            let kept = level_db(body, hz) - (-6.02); // the tone is at half scale
            let alias = level_db(body, image) - (-6.02);
            assert!(
                kept > floor_db && kept < 0.1,
                "{rate} Hz: {hz} Hz tone at {kept:.2} dB"
            );
            assert!(
                alias < -70.0,
                "{rate} Hz: image of {hz} Hz at {alias:.1} dB"
            );
            if hz <= 10_000.0 {
                // Sample for sample the 48 kHz sine with the same start (no delay, no drift).
                let worst = body
                    .iter()
                    .step_by(2)
                    .enumerate()
                    .map(|(i, &v)| {
                        let t = (i + 4800) as f64 / f64::from(OUTPUT_RATE);
                        let want = (2.0 * std::f64::consts::PI * hz * t).sin() * 0.5;
                        (f64::from(v) - want).abs()
                    })
                    .fold(0.0, f64::max);
                // 1 % of the amplitude: a delay of a tenth of a sample would be 3 % at 10 kHz.
                assert!(worst < 5e-3, "{rate} Hz, {hz} Hz: off by {worst}");
            }
        }
    }

    #[test]
    fn reset_forgets_the_previous_signal() {
        let mut r = Resampler48k::new(44_100, ResamplingQuality::Low).unwrap();
        let mut out = StereoFifo::with_capacity(0);
        let loud = tone(44_100, 440.0, 4410);
        r.input_tail(4410).copy_from_slice(&loud);
        r.process(&mut out).unwrap();
        r.reset();
        out.clear();
        r.input_tail(44_100).fill(0.0);
        r.process(&mut out).unwrap();
        assert!(out.frames() > 40_000);
        assert!(out.samples().iter().all(|v| v.abs() < 1e-6));
    }
}
