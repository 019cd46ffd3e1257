//! Polyphase FIR upsampling to 48 kHz, the resampler of `resamplingQuality: LOW` for sources
//! below 48 kHz whose rate ratio is a small fraction (44.1 kHz → 48 kHz is 147 → 160).
//!
//! With `rate / 48000 = M / L` in lowest terms, output frame `n` lies at input position
//! `n·M / L`: input frame `⌊n·M / L⌋` plus the fraction `(n·M mod L) / L`. For each of the `L`
//! fractions (phases) one set of [`TAPS`] weights is precomputed — a windowed sinc (Kaiser
//! window) around that fraction — so an output frame costs one dot product per channel and
//! nothing is interpolated: every output sample lands exactly where it belongs.
//!
//! The low-pass cutoff sits below the input's Nyquist frequency so that its stop band starts
//! near there: images of the input spectrum (which fold back into the audible band when
//! upsampling by a non-integer ratio) come out 75 dB or more below the tone they mirror; the
//! cost is a roll-off at the top of the source's band (for 44.1 kHz sources: flat within
//! 0.01 dB up to 17 kHz, −1.7 dB at 19 kHz). Lavaplayer's LOW is linear interpolation.
//!
//! Weights are stored per phase with each tap written twice (`h0 h0 h1 h1 …`), so that one
//! product over interleaved stereo computes both channels in alternating lanes. Tables are
//! shared between all players of the same source rate.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::sync::{Arc, Mutex};

use super::fifo::StereoFifo;
use super::resample::OUTPUT_RATE;

/// Weights per phase (input frames each output frame is computed from); a multiple of 8.
/// 48 taps would move the roll-off up by about 1 dB at 19 kHz for half as much work again.
const TAPS: usize = 32;

/// Most phases a table may have (`L`); rates whose ratio needs more use the FFT resampler.
/// 640 covers 44.1, 22.05 and 11.025 kHz as well as every divisor of 48 kHz.
const MAX_PHASES: usize = 640;

/// Kaiser window shape (the stop band's depth against the transition band's width).
const KAISER_BETA: f64 = 7.0;

/// Cutoff as a fraction of the input's Nyquist frequency: the middle of the transition band,
/// whose upper end (the start of the stop band) lies near the input's Nyquist frequency.
const CUTOFF: f64 = 0.91;

/// Interleaved samples of one phase's weights.
const ROW: usize = 2 * TAPS;

/// Input frames kept before the first real one (zeros after a reset), so that the first output
/// frame's window is complete and output frame 0 lines up with input frame 0.
const HISTORY: usize = TAPS / 2 - 1;

/// The reduced ratio `rate / 48000 = step / phases`, when `rate` is below 48 kHz and needs at
/// most [`MAX_PHASES`] phases.
pub(crate) fn ratio(rate: u32) -> Option<(usize, usize)> {
    if rate == 0 || rate >= OUTPUT_RATE {
        return None;
    }
    let (mut a, mut b) = (rate, OUTPUT_RATE);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let (step, phases) = ((rate / a) as usize, (OUTPUT_RATE / a) as usize);
    (phases <= MAX_PHASES).then_some((step, phases))
}

/// Upsamples interleaved stereo from one source rate to 48 kHz.
pub(crate) struct Polyphase {
    /// `phases` rows of [`ROW`] weights.
    table: Arc<[f32]>,
    /// Input frames per `phases` output frames (`M`).
    step: usize,
    /// Phases (`L`).
    phases: usize,
    /// Position of the next output frame in the input, in units of `1 / phases` frames,
    /// counted from the first frame of its window (the FIFO's head).
    position: usize,
}

impl Polyphase {
    /// A resampler for `rate`, or `None` when [`ratio`] does not allow one.
    pub(crate) fn new(rate: u32) -> Option<Polyphase> {
        let (step, phases) = ratio(rate)?;
        Some(Polyphase {
            table: shared_table(phases),
            step,
            phases,
            position: 0,
        })
    }

    /// Forgets the stream position; `input` (emptied by the caller) gets the leading history.
    pub(crate) fn reset(&mut self, input: &mut StereoFifo) {
        self.position = 0;
        input.push_silence(HISTORY);
    }

    /// Frames of zeros to append after the last real input so that every output frame up to
    /// the end of the input can be computed.
    pub(crate) fn tail_frames(&self) -> usize {
        TAPS / 2 + 1
    }

    /// Computes every output frame whose window is complete in `input`, at most `limit`,
    /// appending them to `out`; drops the input frames no later window needs. Returns the
    /// frames produced.
    pub(crate) fn process(
        &mut self,
        input: &mut StereoFifo,
        out: &mut StereoFifo,
        limit: usize,
    ) -> usize {
        let available = input.frames();
        if available < TAPS {
            return 0;
        }
        // Output frames whose window [start, start + TAPS) fits in the input.
        let last_start = available - TAPS;
        let last_position = (last_start + 1) * self.phases - 1;
        let count = if self.position > last_position {
            0
        } else {
            ((last_position - self.position) / self.step + 1).min(limit)
        };
        if count > 0 {
            let start = self.position / self.phases;
            let phase = self.position % self.phases;
            let dst = out.tail_mut(count);
            let job = kernel::Job {
                samples: input.samples(),
                table: &self.table,
                step: self.step,
                phases: self.phases,
            };
            let (start, phase) = kernel::run(&job, dst, start, phase);
            self.position = start * self.phases + phase;
        }
        let drop = self.position / self.phases;
        input.consume(drop);
        self.position -= drop * self.phases;
        count
    }
}

/// The inner loop: one dot product per channel and output frame.
mod kernel {
    use super::ROW;

    /// What one run reads: the input, the table, and how the windows advance.
    pub(super) struct Job<'a> {
        pub(super) samples: &'a [f32],
        pub(super) table: &'a [f32],
        /// Phases the window advances per output frame, of `phases` per input frame.
        pub(super) step: usize,
        pub(super) phases: usize,
    }

    impl Job<'_> {
        /// Writes one output frame per call of `dot(window start, phase)` into `dst` and steps
        /// the window; returns the window and phase of the next output frame. Inlined into each
        /// kernel, so the dot product inlines too.
        #[inline(always)]
        fn walk(
            &self,
            dst: &mut [f32],
            mut start: usize,
            mut phase: usize,
            mut dot: impl FnMut(usize, usize) -> (f32, f32),
        ) -> (usize, usize) {
            for frame in dst.chunks_exact_mut(2) {
                (frame[0], frame[1]) = dot(start, phase);
                // step < phases: the window moves on by at most one input frame.
                phase += self.step;
                if phase >= self.phases {
                    phase -= self.phases;
                    start += 1;
                }
            }
            (start, phase)
        }
    }

    /// Fills `dst` (interleaved stereo) from the job's samples starting at window `start` and
    /// `phase`; returns the window and phase of the next output frame.
    pub(super) fn run(job: &Job, dst: &mut [f32], start: usize, phase: usize) -> (usize, usize) {
        let frames = dst.len() / 2;
        // Every window and row read below lies inside the slices.
        assert!(job.step < job.phases && job.table.len() >= job.phases * ROW);
        let last_start = start + (phase + (frames.max(1) - 1) * job.step) / job.phases;
        assert!(2 * last_start + ROW <= job.samples.len());
        #[cfg(target_arch = "x86_64")]
        if crate::audio::has_avx_fma() {
            // SAFETY: the CPU has AVX and FMA (checked just above); bounds asserted above.
            return unsafe { x86::run_avx_fma(job, dst, start, phase) };
        }
        generic(job, dst, start, phase)
    }

    /// Portable version (SSE on x86_64 after auto-vectorisation at best).
    pub(super) fn generic(
        job: &Job,
        dst: &mut [f32],
        start: usize,
        phase: usize,
    ) -> (usize, usize) {
        job.walk(dst, start, phase, |start, phase| {
            let x = &job.samples[2 * start..2 * start + ROW];
            let h = &job.table[phase * ROW..(phase + 1) * ROW];
            let mut acc = [0.0f32; 8];
            for (xs, hs) in x.chunks_exact(8).zip(h.chunks_exact(8)) {
                for i in 0..8 {
                    acc[i] += xs[i] * hs[i];
                }
            }
            (
                (acc[0] + acc[4]) + (acc[2] + acc[6]),
                (acc[1] + acc[5]) + (acc[3] + acc[7]),
            )
        })
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::{Job, ROW};
        use std::arch::x86_64::{
            _mm_add_ps, _mm_movehl_ps, _mm_storeu_ps, _mm256_add_ps, _mm256_castps256_ps128,
            _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        };

        const _: () = assert!(ROW.is_multiple_of(16));

        /// [`super::generic`] with 8-lane fused multiply-adds.
        ///
        /// # Safety
        /// The CPU must support AVX and FMA, and every window `samples[2·start..][..ROW]` and row
        /// `table[phase·ROW..][..ROW]` the loop reaches must be in bounds (the caller asserts
        /// it for the last window; windows only move forward).
        #[target_feature(enable = "avx,fma")]
        pub(super) unsafe fn run_avx_fma(
            job: &Job,
            dst: &mut [f32],
            start: usize,
            phase: usize,
        ) -> (usize, usize) {
            let xp = job.samples.as_ptr();
            let hp = job.table.as_ptr();
            job.walk(dst, start, phase, |start, phase| {
                let mut lanes = [0.0f32; 4];
                // SAFETY: in bounds per this function's contract; unaligned loads.
                unsafe {
                    let x = xp.add(2 * start);
                    let h = hp.add(phase * ROW);
                    // Two accumulators (lanes L R L R …) for independent add chains.
                    let mut a = _mm256_setzero_ps();
                    let mut b = _mm256_setzero_ps();
                    let mut i = 0;
                    while i < ROW {
                        a = _mm256_fmadd_ps(
                            _mm256_loadu_ps(x.add(i)),
                            _mm256_loadu_ps(h.add(i)),
                            a,
                        );
                        b = _mm256_fmadd_ps(
                            _mm256_loadu_ps(x.add(i + 8)),
                            _mm256_loadu_ps(h.add(i + 8)),
                            b,
                        );
                        i += 16;
                    }
                    let s = _mm256_add_ps(a, b);
                    let q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
                    _mm_storeu_ps(lanes.as_mut_ptr(), _mm_add_ps(q, _mm_movehl_ps(q, q)));
                }
                (lanes[0], lanes[1])
            })
        }
    }
}

/// The table for `phases`, built once per process and shared.
fn shared_table(phases: usize) -> Arc<[f32]> {
    static TABLES: Mutex<Option<HashMap<usize, Arc<[f32]>>>> = Mutex::new(None);
    let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    tables
        .get_or_insert_with(HashMap::new)
        .entry(phases)
        .or_insert_with(|| build_table(phases))
        .clone()
}

/// Windowed-sinc weights for every phase, each row normalised to a sum of 1 (no DC ripple
/// between phases).
fn build_table(phases: usize) -> Arc<[f32]> {
    let mut table = vec![0.0f32; phases * ROW];
    for (phase, row) in table.chunks_exact_mut(ROW).enumerate() {
        let frac = phase as f64 / phases as f64;
        kaiser_sinc_row(row, HISTORY, frac, CUTOFF);
    }
    table.into()
}

/// The most taps [`kaiser_sinc_row`] computes.
pub(crate) const MAX_ROW_TAPS: usize = 256;

/// Fills `row` (two entries per tap, for interleaved stereo) with the weights of a
/// Kaiser-windowed sinc low-pass whose cutoff is `cutoff` times the input's Nyquist
/// frequency, for an output frame `frac` input frames after input frame `history` of the
/// window; the weights sum to 1 (unity gain at DC). Shared with the timescale's resampler.
pub(crate) fn kaiser_sinc_row(row: &mut [f32], history: usize, frac: f64, cutoff: f64) {
    let taps = row.len() / 2;
    let half = taps as f64 / 2.0;
    let i0_beta = bessel_i0(KAISER_BETA);
    let weight = |k: usize| {
        let t = k as f64 - history as f64 - frac;
        let edge = t / half;
        let window = if edge.abs() >= 1.0 {
            0.0
        } else {
            bessel_i0(KAISER_BETA * (1.0 - edge * edge).sqrt()) / i0_beta
        };
        let x = cutoff * t;
        let sinc = if x.abs() < 1e-12 {
            1.0
        } else {
            (PI * x).sin() / (PI * x)
        };
        sinc * window
    };
    let mut weights = [0.0f64; MAX_ROW_TAPS];
    let weights = &mut weights[..taps];
    for (k, w) in weights.iter_mut().enumerate() {
        *w = weight(k);
    }
    let sum: f64 = weights.iter().sum();
    for (pair, w) in row.chunks_exact_mut(2).zip(weights.iter()) {
        let v = (w / sum) as f32;
        pair[0] = v;
        pair[1] = v;
    }
}

fn bessel_i0(x: f64) -> f64 {
    let quarter = x * x / 4.0;
    let (mut sum, mut term) = (1.0, 1.0);
    for k in 1..64 {
        term *= quarter / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_reduce_and_large_ones_are_refused() {
        assert_eq!(ratio(44_100), Some((147, 160)));
        assert_eq!(ratio(22_050), Some((147, 320)));
        assert_eq!(ratio(11_025), Some((147, 640)));
        assert_eq!(ratio(32_000), Some((2, 3)));
        assert_eq!(ratio(8_000), Some((1, 6)));
        assert_eq!(ratio(48_000), None);
        assert_eq!(ratio(96_000), None);
        assert_eq!(ratio(44_101), None);
        assert_eq!(ratio(0), None);
    }

    #[test]
    fn the_simd_kernel_matches_the_portable_one() {
        let (step, phases) = ratio(44_100).unwrap();
        let table = build_table(phases);
        // A deterministic noise-like signal.
        let samples: Vec<f32> = (0..8000u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 8) as f32 / 8_388_608.0) - 1.0)
            .collect();
        let mut fast = vec![0.0f32; 2 * 3000];
        let mut plain = vec![0.0f32; 2 * 3000];
        let job = kernel::Job {
            samples: &samples,
            table: &table,
            step,
            phases,
        };
        let a = kernel::run(&job, &mut fast, 3, 17);
        let b = kernel::generic(&job, &mut plain, 3, 17);
        assert_eq!(a, b);
        for (x, y) in fast.iter().zip(&plain) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    #[test]
    fn every_phase_has_unit_gain_at_dc() {
        let table = build_table(160);
        for row in table.chunks_exact(ROW) {
            let sum: f32 = row.iter().step_by(2).sum();
            assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        }
    }
}
