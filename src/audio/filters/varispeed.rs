//! Band-limited resampling of 48 kHz stereo by any ratio: the timescale filter's `rate` (and,
//! behind the tempo stretcher, `pitch`) stage, played like a tape run faster or slower.
//!
//! Output frame `n` lies at input time `t = t₀ + n·step` (step = input rate / output rate),
//! kept in 32.32 fixed point so no error accumulates. Its value is a Kaiser-windowed sinc
//! over the input frames around `t`: weights are tabulated for [`PHASES`] fractions of a frame
//! and the two rows around the actual fraction are blended linearly (the same scheme as
//! rubato's sinc resampler with linear interpolation). The low-pass cutoff is 0.91 of the
//! lower of the two Nyquist frequencies, so speeding up removes what would alias instead of
//! folding it back; when speeding up the filter gets proportionally more taps (its
//! transition band stays as narrow in Hz), so the work per *input* frame stays about 32
//! multiply-adds per channel.
//!
//! A ratio change keeps the read position and the buffered input and only swaps the weights:
//! the sound continues from the very next frame at the new speed. The resampler adds no
//! latency; it holds back the half window of input it has to look ahead.

use std::sync::{Arc, Mutex};

use crate::audio::polyphase::{MAX_ROW_TAPS, kaiser_sinc_row};

/// Weights per output frame when slowing down or keeping the speed; more when speeding up.
const MIN_TAPS: usize = 32;
/// Upper bound of taps (speeding up by 8 or more).
const MAX_TAPS: usize = MAX_ROW_TAPS;
/// Tabulated fractions of a frame; the table has one more row (the fraction 1).
const PHASES: usize = 256;
/// Input frames kept before the read position: the longest filter's half window.
pub(super) const KEEP: usize = MAX_TAPS / 2;
/// Cutoff as a fraction of the lower Nyquist frequency.
const CUTOFF: f64 = 0.91;
const ONE: u64 = 1 << 32;

pub(super) struct Varispeed {
    /// `PHASES + 1` rows of `taps` weights, shared with every other player at the same ratio.
    table: Arc<[f32]>,
    taps: usize,
    /// Input frames per output frame, 32.32 fixed point.
    step: u64,
    /// Input time of the next output frame, in frames from the start of `input`, 32.32.
    position: u64,
    /// The input from `KEEP` frames before the read position on, one channel each (so that
    /// a window is a plain run of samples and a weight row serves both channels).
    left: Vec<f32>,
    right: Vec<f32>,
}

impl Varispeed {
    /// A resampler for `ratio` (output rate / input rate) whose first output frame is the
    /// next input frame; `history` (interleaved, oldest first) is the input just before it,
    /// as far as there is any.
    pub(super) fn new(ratio: f64, history: &[f32]) -> Self {
        let mut v = Varispeed {
            table: Arc::new([]),
            taps: 0,
            step: 0,
            position: 0,
            left: Vec::with_capacity(KEEP + MAX_TAPS + super::WORK_FRAMES),
            right: Vec::with_capacity(KEEP + MAX_TAPS + super::WORK_FRAMES),
        };
        v.set_ratio(ratio);
        v.start(history);
        v
    }

    fn start(&mut self, history: &[f32]) {
        let history = &history[history.len().saturating_sub(2 * KEEP) & !1..];
        for channel in [&mut self.left, &mut self.right] {
            channel.clear();
            channel.resize(KEEP - history.len() / 2, 0.0);
        }
        self.append(history);
        self.position = KEEP as u64 * ONE;
    }

    /// Appends interleaved stereo frames to the two channels.
    fn append(&mut self, frames: &[f32]) {
        self.left.extend(frames.chunks_exact(2).map(|f| f[0]));
        self.right.extend(frames.chunks_exact(2).map(|f| f[1]));
    }

    /// Continue at a new ratio from the current position.
    pub(super) fn set_ratio(&mut self, ratio: f64) {
        self.taps = taps_for(ratio);
        self.table = shared_table(ratio, self.taps);
        self.step = ((ONE as f64) / ratio).round() as u64;
    }

    /// Forget all input (after a seek).
    pub(super) fn reset(&mut self) {
        self.start(&[]);
    }

    /// Resample interleaved stereo `input`, appending every output frame whose window is
    /// complete to `out`.
    pub(super) fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.append(input);
        let frames = self.left.len();
        let history = self.taps / 2 - 1;
        // The last input frame a window may start from.
        let Some(last) = (frames + history).checked_sub(self.taps) else {
            return;
        };
        let end = (last as u64 + 1) * ONE;
        if self.position < end {
            let count = ((end - 1 - self.position) / self.step + 1) as usize;
            let start = out.len();
            out.resize(start + 2 * count, 0.0);
            let job = kernel::Job {
                left: &self.left,
                right: &self.right,
                table: &self.table,
                position: self.position,
                step: self.step,
                history,
            };
            kernel::run(&job, &mut out[start..]);
            self.position += count as u64 * self.step;
        }
        let drop = ((self.position / ONE) as usize).saturating_sub(KEEP);
        for channel in [&mut self.left, &mut self.right] {
            channel.copy_within(drop.., 0);
            channel.truncate(channel.len() - drop);
        }
        self.position -= drop as u64 * ONE;
    }
}

/// Weights per output frame at `ratio`: the filter's span in input frames stays the same.
fn taps_for(ratio: f64) -> usize {
    let speedup = (1.0 / ratio).max(1.0);
    ((MIN_TAPS as f64 * speedup / 8.0).ceil() as usize * 8).min(MAX_TAPS)
}

/// Builds (or finds) the table for `ratio` now, so that a resampler made for it later finds it
/// among the recent ones.
pub(super) fn prepare(ratio: f64) {
    shared_table(ratio, taps_for(ratio));
}

/// Tables kept after their last resampler is gone (the most recently used ones): a bot's
/// next track usually comes with the same preset, and it then finds its table instead of
/// building it again (a table is 33–41 KB and about a millisecond of work).
const KEEP_UNUSED: usize = 8;

/// Every table in use, and up to [`KEEP_UNUSED`] unused ones; least recently asked for first.
static TABLES: Mutex<Vec<(u64, Arc<[f32]>)>> = Mutex::new(Vec::new());

/// The table for `ratio` with `taps` taps: built once, then shared by every resampler at that
/// ratio (bots tend to apply the same few presets).
fn shared_table(ratio: f64, taps: usize) -> Arc<[f32]> {
    let key = ratio.to_bits();
    let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    let table = match tables.iter().position(|(k, _)| *k == key) {
        Some(i) => tables.remove(i).1,
        None => build_table(ratio, taps),
    };
    tables.push((key, table.clone()));
    // Unused (only this list holds them) beyond the newest few go, oldest first.
    let unused = tables
        .iter()
        .filter(|(_, t)| Arc::strong_count(t) == 1)
        .count();
    let mut excess = unused.saturating_sub(KEEP_UNUSED);
    tables.retain(|(_, t)| {
        let drop = excess > 0 && Arc::strong_count(t) == 1;
        excess -= usize::from(drop);
        !drop
    });
    table
}

fn build_table(ratio: f64, taps: usize) -> Arc<[f32]> {
    let cutoff = CUTOFF * ratio.min(1.0);
    let mut table = vec![0.0f32; (PHASES + 1) * taps];
    // The row function writes each weight twice (for interleaved stereo); keep one of each.
    let mut twice = [0.0f32; 2 * MAX_TAPS];
    for (phase, row) in table.chunks_exact_mut(taps).enumerate() {
        let twice = &mut twice[..2 * taps];
        kaiser_sinc_row(twice, taps / 2 - 1, phase as f64 / PHASES as f64, cutoff);
        for (w, pair) in row.iter_mut().zip(twice.chunks_exact(2)) {
            *w = pair[0];
        }
    }
    table.into()
}

/// The inner loop: for each output frame, the two table rows around its fraction applied to
/// the input window of each channel, blended.
mod kernel {
    use super::{ONE, PHASES};

    /// What one run reads: the input, the table, and where the windows lie.
    pub(super) struct Job<'a> {
        pub(super) left: &'a [f32],
        pub(super) right: &'a [f32],
        pub(super) table: &'a [f32],
        /// Input time of the first output frame and the step per frame, 32.32.
        pub(super) position: u64,
        pub(super) step: u64,
        /// Window frames before the output's time.
        pub(super) history: usize,
    }

    impl Job<'_> {
        /// Weights per table row (one per tap).
        fn taps(&self) -> usize {
            self.table.len() / (PHASES + 1)
        }

        /// Calls `dots(window start, row)` for each output frame and blends the two rows'
        /// results (`[left, right]` each) by the frame's fraction.
        #[inline(always)]
        fn walk(&self, out: &mut [f32], mut dots: impl FnMut(usize, usize) -> [[f32; 2]; 2]) {
            let mut t = self.position;
            for frame in out.chunks_exact_mut(2) {
                let scaled = (t & (ONE - 1)) * PHASES as u64;
                let r = (scaled >> 32) as usize;
                let mu = (scaled & (ONE - 1)) as f32 / ONE as f32;
                let [p, q] = dots((t / ONE) as usize - self.history, r);
                frame[0] = p[0] + mu * (q[0] - p[0]);
                frame[1] = p[1] + mu * (q[1] - p[1]);
                t += self.step;
            }
        }
    }

    pub(super) fn run(job: &Job, out: &mut [f32]) {
        let taps = job.taps();
        // Every window read below lies inside the input.
        let frames = out.len() / 2;
        let last = job.position + (frames.max(1) as u64 - 1) * job.step;
        assert!(((job.position / ONE) as usize) >= job.history);
        assert!((last / ONE) as usize - job.history + taps <= job.left.len());
        assert_eq!(job.left.len(), job.right.len());
        assert!(taps.is_multiple_of(8));
        #[cfg(target_arch = "x86_64")]
        if crate::audio::has_avx_fma() {
            // SAFETY: the CPU has AVX and FMA; the asserts above bound every read.
            unsafe { x86::run_avx_fma(job, out) };
            return;
        }
        generic(job, out);
    }

    pub(super) fn generic(job: &Job, out: &mut [f32]) {
        let taps = job.taps();
        job.walk(out, |start, r| {
            let l = &job.left[start..start + taps];
            let rt = &job.right[start..start + taps];
            let h0 = &job.table[r * taps..(r + 1) * taps];
            let h1 = &job.table[(r + 1) * taps..(r + 2) * taps];
            // [left·h0, right·h0, left·h1, right·h1], eight lanes each.
            let mut acc = [[0.0f32; 8]; 4];
            for (((l, rt), h0), h1) in l
                .chunks_exact(8)
                .zip(rt.chunks_exact(8))
                .zip(h0.chunks_exact(8))
                .zip(h1.chunks_exact(8))
            {
                for i in 0..8 {
                    acc[0][i] += l[i] * h0[i];
                    acc[1][i] += rt[i] * h0[i];
                    acc[2][i] += l[i] * h1[i];
                    acc[3][i] += rt[i] * h1[i];
                }
            }
            let [a, b, c, d] =
                acc.map(|v| ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])));
            [[a, b], [c, d]]
        });
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::Job;
        use std::arch::x86_64::{
            _mm_add_ps, _mm_storeu_ps, _mm256_castps256_ps128, _mm256_extractf128_ps,
            _mm256_fmadd_ps, _mm256_hadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        };

        /// # Safety
        /// The CPU must support AVX and FMA, and every window must lie inside the input
        /// (checked by the caller).
        #[target_feature(enable = "avx,fma")]
        pub(super) unsafe fn run_avx_fma(job: &Job, out: &mut [f32]) {
            let taps = job.taps();
            let (lp, rp, hp) = (job.left.as_ptr(), job.right.as_ptr(), job.table.as_ptr());
            job.walk(out, |start, r| {
                // SAFETY: the windows and both rows are in bounds (see `run`).
                unsafe {
                    let (l, rt) = (lp.add(start), rp.add(start));
                    let h0 = hp.add(r * taps);
                    let h1 = hp.add((r + 1) * taps);
                    let (mut l0, mut r0) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                    let (mut l1, mut r1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                    let mut i = 0;
                    while i < taps {
                        let (xl, xr) = (_mm256_loadu_ps(l.add(i)), _mm256_loadu_ps(rt.add(i)));
                        let (a, b) = (_mm256_loadu_ps(h0.add(i)), _mm256_loadu_ps(h1.add(i)));
                        l0 = _mm256_fmadd_ps(xl, a, l0);
                        r0 = _mm256_fmadd_ps(xr, a, r0);
                        l1 = _mm256_fmadd_ps(xl, b, l1);
                        r1 = _mm256_fmadd_ps(xr, b, r1);
                        i += 8;
                    }
                    // Three horizontal adds and the halves added: [l0, r0, l1, r1] summed.
                    let h = _mm256_hadd_ps(_mm256_hadd_ps(l0, r0), _mm256_hadd_ps(l1, r1));
                    let sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
                    let mut s = [0.0f32; 4];
                    _mm_storeu_ps(s.as_mut_ptr(), sums);
                    [[s[0], s[1]], [s[2], s[3]]]
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;
    use super::*;

    fn resample(ratio: f64, input: &[f32], block: usize) -> Vec<f32> {
        let mut v = Varispeed::new(ratio, &[]);
        let mut out = Vec::new();
        for b in input.chunks(block) {
            v.process(b, &mut out);
        }
        out
    }

    #[test]
    fn a_ratio_of_one_passes_the_input_through_without_delay() {
        let input = sine(1000.0, 0.5, 0.5);
        let out = resample(1.0, &input, 1920);
        assert!(out.len() >= input.len() - 2 * 16);
        let err = max_abs_diff(&out[64..], &input[64..out.len()]);
        // The pass band ripples by about −70 dB.
        assert!(err < 5e-4, "{err}");
    }

    #[test]
    fn the_output_tone_is_where_the_ratio_puts_it_and_lands_on_time() {
        // Ratio 1.25 (more output, slower): 800 Hz → 640 Hz, sample for sample
        // against the ideal tone.
        for (ratio, freq) in [(1.25, 800.0), (0.8, 800.0), (1.0 / 1.071, 2000.0)] {
            let input = sine(freq, 0.5, 1.0);
            let out = resample(ratio, &input, 1000);
            let l = left(&out);
            let ideal: Vec<f32> = (0..l.len())
                .map(|n| 0.5 * tone(freq / ratio, n as f64 / 48_000.0))
                .collect();
            let err = max_abs_diff(&l[64..], &ideal[64..l.len()]);
            assert!(err < 2e-3, "ratio {ratio}: off the ideal tone by {err}");
            let expected = input.len() as f64 / 2.0 * ratio;
            assert!((l.len() as f64 - expected).abs() < 200.0 * ratio.max(1.0));
        }
    }

    #[test]
    fn resamplers_at_one_ratio_share_a_table_and_a_recent_one_outlives_them() {
        let a = Varispeed::new(0.8123, &[]);
        let b = Varispeed::new(0.8123, &[]);
        assert!(Arc::ptr_eq(&a.table, &b.table));
        let other = Varispeed::new(0.8124, &[]);
        assert!(!Arc::ptr_eq(&a.table, &other.table));
        let weak = Arc::downgrade(&a.table);
        drop((a, b));
        // The next track at the same ratio finds the same table.
        let again = Varispeed::new(0.8123, &[]);
        assert!(Arc::ptr_eq(&again.table, &weak.upgrade().unwrap()));
        drop(again);
        // Enough other ratios later (used and let go), it is gone.
        for k in 0..=KEEP_UNUSED {
            drop(Varispeed::new(0.7 + k as f64 * 1e-3, &[]));
        }
        assert!(
            weak.upgrade().is_none(),
            "an unused table was kept too long"
        );
    }

    #[test]
    fn a_prepared_table_is_the_one_a_resampler_then_gets() {
        let ratio = 0.6789;
        prepare(ratio);
        let weak = {
            let tables = TABLES.lock().unwrap();
            let (_, table) = tables.iter().find(|(k, _)| *k == ratio.to_bits()).unwrap();
            Arc::downgrade(table)
        };
        let v = Varispeed::new(ratio, &[]);
        assert!(Arc::ptr_eq(&v.table, &weak.upgrade().unwrap()));
    }

    #[test]
    fn the_simd_kernel_matches_the_portable_one() {
        let input: Vec<f32> = (0..20_000u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 8) as f32 / 8_388_608.0) - 1.0)
            .collect();
        for ratio in [1.0 / 1.071, 1.3, 1.0 / 3.0] {
            let v = Varispeed::new(ratio, &[]);
            let history = v.taps / 2 - 1;
            let count = 2000;
            let t0 = KEEP as u64 * ONE + 12_345;
            let mut a = vec![0.0f32; 2 * count];
            let mut b = vec![0.0f32; 2 * count];
            let (left, right) = (left(&input), right(&input));
            let job = kernel::Job {
                left: &left,
                right: &right,
                table: &v.table,
                position: t0,
                step: v.step,
                history,
            };
            kernel::run(&job, &mut a);
            kernel::generic(&job, &mut b);
            assert!(max_abs_diff(&a, &b) < 1e-5, "ratio {ratio}");
        }
    }
}
