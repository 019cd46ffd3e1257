//! Sample-rate conversion of decoded stereo to 48 kHz with rubato's FFT resampler (the ratio of
//! a track never changes), fed and drained through FIFOs so that decoder packet sizes and the
//! encoder's 20 ms frames need not match.
//!
//! The resampler's start-up delay is discarded and its tail flushed at the end of the track, so
//! output sample `n` lines up with input time `n / 48000` s: positions and seeks stay exact.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _, WindowFunction};

use super::fifo::StereoFifo;
use super::pipeline::AudioError;
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
    inner: Fft<f32>,
    rate: u32,
    /// Source-rate stereo waiting for a full input chunk.
    input: StereoFifo,
    /// One chunk of output (interleaved).
    scratch: Vec<f32>,
    /// Output frames still to discard (the resampler's delay) since the last reset.
    skip_out: usize,
    /// Real input frames pushed since the last reset.
    in_total: u64,
    /// Output frames handed on since the last reset.
    out_total: u64,
}

impl Resampler48k {
    pub(crate) fn new(rate: u32, quality: ResamplingQuality) -> Result<Self, AudioError> {
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
        let max_in = inner.input_frames_max();
        let max_out = inner.output_frames_max();
        let skip_out = inner.output_delay();
        Ok(Resampler48k {
            inner,
            rate,
            input: StereoFifo::with_capacity(max_in * 2 + 8192),
            scratch: vec![0.0; max_out * 2],
            skip_out,
            in_total: 0,
            out_total: 0,
        })
    }

    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// Room for `frames` more source frames (interleaved stereo), to be filled by the caller.
    pub(crate) fn input_tail(&mut self, frames: usize) -> &mut [f32] {
        self.in_total += frames as u64;
        self.input.tail_mut(frames)
    }

    /// Resamples every full input chunk waiting, appending 48 kHz stereo to `out`.
    pub(crate) fn process(&mut self, out: &mut StereoFifo) -> Result<(), AudioError> {
        while self.input.frames() >= self.inner.input_frames_next() {
            self.run_chunk(None, out, u64::MAX)?;
        }
        Ok(())
    }

    /// End of input: resamples what is left and flushes the resampler's tail, so that exactly
    /// `input frames × 48000 / rate` frames (rounded up) came out in total.
    pub(crate) fn finish(&mut self, out: &mut StereoFifo) -> Result<(), AudioError> {
        self.process(out)?;
        let expected = (self.in_total * OUTPUT_RATE as u64).div_ceil(self.rate as u64);
        // Each round produces a full chunk; bound the loop all the same.
        let mut rounds = 0;
        while self.out_total < expected && rounds < 64 {
            let partial = self.input.frames().min(self.inner.input_frames_next());
            self.run_chunk(Some(partial), out, expected)?;
            rounds += 1;
        }
        self.input.clear();
        Ok(())
    }

    /// Forgets all state (after a seek).
    pub(crate) fn reset(&mut self) {
        self.inner.reset();
        self.input.clear();
        self.skip_out = self.inner.output_delay();
        self.in_total = 0;
        self.out_total = 0;
    }

    fn run_chunk(
        &mut self,
        partial: Option<usize>,
        out: &mut StereoFifo,
        cap_total: u64,
    ) -> Result<(), AudioError> {
        let need = self.inner.input_frames_next();
        let available = partial.unwrap_or(need);
        let indexing = Indexing {
            partial_len: partial,
            ..Indexing::default()
        };
        let frames_out = self.inner.output_frames_next();
        let input = InterleavedSlice::new(self.input.samples(), 2, available)
            .map_err(|e| AudioError::Decode(format!("resampler input: {e}")))?;
        let mut output =
            InterleavedSlice::new_mut(&mut self.scratch[..frames_out * 2], 2, frames_out)
                .map_err(|e| AudioError::Decode(format!("resampler output: {e}")))?;
        let (_, produced) = self
            .inner
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| AudioError::Decode(format!("resampler: {e}")))?;
        self.input.consume(available);

        let skip = self.skip_out.min(produced);
        self.skip_out -= skip;
        let room = cap_total.saturating_sub(self.out_total);
        let keep = ((produced - skip) as u64).min(room) as usize;
        out.push(&self.scratch[skip * 2..(skip + keep) * 2]);
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
