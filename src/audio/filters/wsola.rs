//! WSOLA (waveform-similarity overlap-add) time stretching, the method of SoundTouch and so of
//! Lavalink's timescale filter: changes the tempo of 48 kHz stereo audio and keeps its pitch.
//!
//! The input is cut into *sequences* of `S` frames that are played back to back, each
//! overlapping the one before by `O` frames (a linear cross-fade). Between two sequences the
//! input read position advances by `tempo · (S − O)` frames while the output advances by
//! `S − O`, which is what changes the tempo. To avoid the phase jumps that plain
//! overlap-add would make there, each sequence may start anywhere in a *seek window* of `W`
//! frames after its nominal position: the start whose first `O` frames best match the end of
//! the previous sequence (highest normalised cross-correlation) is taken, so the cross-fade
//! joins two nearly identical waveforms.
//!
//! `S` and `W` follow the tempo as SoundTouch's automatic settings do (sequences of 90 ms at
//! half tempo shortening to 40 ms at double tempo, seek windows of 20 ms to 15 ms), `O` is
//! 8 ms. The search scans every `COARSE`-th offset and then refines around the best one.
//!
//! Output comes in whole sequences: a call may append nothing (the first sequence needs
//! `S + W` frames of input) or several sequences. Nothing is lost in between; on average
//! `1/tempo` frames come out per frame in.

use super::SAMPLE_RATE;

/// Cross-fade length.
const OVERLAP_MS: f64 = 8.0;
/// Step of the first, coarse scan of the seek window, in frames.
const COARSE: usize = 4;

/// Sequence and seek-window lengths in ms for a tempo: linear in the tempo between 0.5 and
/// 2.0 (SoundTouch's automatic sequence settings), held outside that range.
fn lengths_ms(tempo: f64) -> (f64, f64) {
    let t = tempo.clamp(0.5, 2.0);
    let along = (t - 0.5) / 1.5;
    (90.0 - 50.0 * along, 20.0 - 5.0 * along)
}

fn ms_to_frames(ms: f64) -> usize {
    (ms * SAMPLE_RATE / 1000.0).round() as usize
}

pub(super) struct Wsola {
    /// Input frames consumed per output frame.
    tempo: f64,
    /// Sequence length `S`, seek window `W`, overlap `O`, in frames.
    sequence: usize,
    seek: usize,
    overlap: usize,
    /// Input not consumed yet, interleaved; a sequence is searched from its start.
    input: Vec<f32>,
    /// Input frames still to drop before `input` starts (a skip longer than what was buffered).
    to_skip: usize,
    /// Fraction of an input frame carried between skips.
    skip_fraction: f64,
    /// The last `O` frames of the previous sequence, interleaved; empty before the first.
    tail: Vec<f32>,
    /// `tail` weighted for the similarity search (more weight in its middle).
    reference: Vec<f32>,
    /// Prefix sums of the input's energy over the seek window, per frame.
    energy: Vec<f64>,
}

impl Wsola {
    pub(super) fn new(tempo: f64) -> Self {
        let mut w = Wsola {
            tempo,
            sequence: 0,
            seek: 0,
            overlap: ms_to_frames(OVERLAP_MS),
            input: Vec::new(),
            to_skip: 0,
            skip_fraction: 0.0,
            tail: Vec::new(),
            reference: Vec::new(),
            energy: Vec::new(),
        };
        w.set(tempo);
        w
    }

    /// A new tempo; the sequence in progress is finished first, the next one uses it.
    pub(super) fn set(&mut self, tempo: f64) {
        self.tempo = tempo;
        let (sequence_ms, seek_ms) = lengths_ms(tempo);
        self.sequence = ms_to_frames(sequence_ms);
        self.seek = ms_to_frames(seek_ms);
        let longest = ms_to_frames(90.0) + ms_to_frames(20.0);
        let frames = longest + super::WORK_FRAMES;
        self.input
            .reserve((2 * frames).saturating_sub(self.input.len()));
        let o = 2 * self.overlap;
        self.tail.reserve(o.saturating_sub(self.tail.len()));
        self.reference
            .reserve(o.saturating_sub(self.reference.len()));
        self.energy
            .reserve((ms_to_frames(20.0) + self.overlap + 1).saturating_sub(self.energy.len()));
    }

    pub(super) fn reset(&mut self) {
        self.input.clear();
        self.to_skip = 0;
        self.skip_fraction = 0.0;
        self.tail.clear();
    }

    /// Stretch interleaved stereo `input`, appending whatever whole sequences are ready to
    /// `out`.
    pub(super) fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let skip_now = (2 * self.to_skip).min(input.len());
        self.to_skip -= skip_now / 2;
        self.input.extend_from_slice(&input[skip_now..]);
        let (s, w, o) = (self.sequence, self.seek, self.overlap);
        while self.to_skip == 0 && self.input.len() >= 2 * (s + w) {
            let start = if self.tail.is_empty() {
                out.extend_from_slice(&self.input[..2 * o]);
                0
            } else {
                let best = self.best_offset();
                self.cross_fade(best, out);
                best
            };
            // The middle of the sequence as it is, then keep its end for the next cross-fade.
            out.extend_from_slice(&self.input[2 * (start + o)..2 * (start + s - o)]);
            self.tail.clear();
            self.tail
                .extend_from_slice(&self.input[2 * (start + s - o)..2 * (start + s)]);
            self.weigh_reference();

            let exact = self.tempo * (s - o) as f64 + self.skip_fraction;
            let skip = exact.floor() as usize;
            self.skip_fraction = exact - skip as f64;
            let buffered = self.input.len() / 2;
            let drop = skip.min(buffered);
            self.input.copy_within(2 * drop.., 0);
            self.input.truncate(2 * (buffered - drop));
            self.to_skip = skip - drop;
        }
    }

    /// `reference` = `tail` weighted by a parabola that is zero at both ends: the middle of
    /// the overlap decides the match, its ends (where the cross-fade weights one side
    /// fully) matter less.
    fn weigh_reference(&mut self) {
        let o = self.overlap;
        self.reference.clear();
        self.reference
            .extend(self.tail.chunks_exact(2).enumerate().flat_map(|(i, f)| {
                let weight = (i * (o - i)) as f32 / (o * o / 4) as f32;
                [f[0] * weight, f[1] * weight]
            }));
    }

    /// The start in `input`, within the seek window, whose first `O` frames are most similar
    /// to the previous sequence's tail.
    fn best_offset(&mut self) -> usize {
        let (w, o) = (self.seek, self.overlap);
        // energy[k] = sum of squares of frames 0..k, so any window's energy is a difference.
        self.energy.clear();
        self.energy.push(0.0);
        let mut sum = 0.0f64;
        for f in self.input[..2 * (w + o)].chunks_exact(2) {
            sum += f64::from(f[0] * f[0] + f[1] * f[1]);
            self.energy.push(sum);
        }
        let score = |offset: usize| -> f64 {
            let x = &self.input[2 * offset..2 * (offset + o)];
            let e = self.energy[offset + o] - self.energy[offset];
            f64::from(dot(&self.reference, x)) / (e + 1e-9).sqrt()
        };
        let mut best = (f64::NEG_INFINITY, 0);
        for offset in (0..=w).step_by(COARSE) {
            let c = score(offset);
            if c > best.0 {
                best = (c, offset);
            }
        }
        let around = best.1;
        for offset in around.saturating_sub(COARSE - 1)..=(around + COARSE - 1).min(w) {
            if offset % COARSE != 0 || offset == around {
                let c = score(offset);
                if c > best.0 {
                    best = (c, offset);
                }
            }
        }
        best.1
    }

    /// Cross-fade from `tail` into the `O` frames of `input` at `start`, appending to `out`.
    fn cross_fade(&self, start: usize, out: &mut Vec<f32>) {
        let o = self.overlap;
        let next = &self.input[2 * start..2 * (start + o)];
        let step = 1.0 / o as f32;
        out.extend(
            self.tail
                .chunks_exact(2)
                .zip(next.chunks_exact(2))
                .enumerate()
                .flat_map(|(i, (a, b))| {
                    let fade_in = i as f32 * step;
                    let fade_out = 1.0 - fade_in;
                    [
                        a[0] * fade_out + b[0] * fade_in,
                        a[1] * fade_out + b[1] * fade_in,
                    ]
                }),
        );
    }
}

/// Dot product of two equally long slices, on the best kernel this CPU has.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::audio::has_avx_fma() {
        // SAFETY: the CPU supports AVX and FMA.
        return unsafe { dot_avx_fma(a, b) };
    }
    dot_lanes::<false>(a, b)
}

/// [`dot_lanes`] compiled for AVX with fused multiply-adds.
///
/// # Safety
/// The CPU must support AVX and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,fma")]
unsafe fn dot_avx_fma(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<true>(a, b)
}

/// Dot product in `LANES` independent sums, so that it vectorises and the sums do not wait
/// on each other; `FMA` fuses each multiply-add (only where the CPU has the instruction:
/// elsewhere it is a library call).
#[inline(always)]
fn dot_lanes<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    // Four AVX registers' worth with FMA (whose latency is four cycles), two SSE registers'
    // worth without.
    const LANES: usize = 32;
    let mut acc = [0.0f32; LANES];
    let (a_blocks, b_blocks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = a_blocks
        .remainder()
        .iter()
        .zip(b_blocks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_blocks.zip(b_blocks) {
        for i in 0..LANES {
            acc[i] = if FMA {
                x[i].mul_add(y[i], acc[i])
            } else {
                acc[i] + x[i] * y[i]
            };
        }
    }
    acc.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    use super::super::test_signal::*;
    use super::*;

    #[test]
    fn both_dot_kernels_give_the_dot_product() {
        let a: Vec<f32> = (0..771).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..771).map(|i| (i as f32 * 0.11).cos()).collect();
        let exact: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        for d in [dot(&a, &b), dot_lanes::<false>(&a, &b)] {
            assert!((f64::from(d) - exact).abs() < 1e-3, "{d} vs {exact}");
        }
    }

    fn stretch(tempo: f64, input: &[f32]) -> Vec<f32> {
        let mut w = Wsola::new(tempo);
        let mut out = Vec::new();
        for block in input.chunks(1920) {
            w.process(block, &mut out);
        }
        out
    }

    #[test]
    fn tempo_one_gives_back_the_input() {
        let input = sine(440.0, 0.5, 1.0);
        let out = stretch(1.0, &input);
        assert!(out.len() > input.len() - 2 * 6000, "{}", out.len());
        assert!(max_abs_diff(&out, &input[..out.len()]) < 1e-5);
    }

    #[test]
    fn length_follows_the_tempo_and_the_pitch_stays() {
        for tempo in [0.5, 0.8, 1.25, 2.0, 4.0] {
            let input = sine(440.0, 0.5, 4.0);
            let out = stretch(tempo, &input);
            let frames = out.len() as f64 / 2.0;
            let expected = input.len() as f64 / 2.0 / tempo;
            // Held back: at most one sequence and seek window of input, and the last sequence.
            assert!(
                frames <= expected + 1.0 && frames > expected - 6000.0 / tempo - 4400.0,
                "tempo {tempo}: {frames} frames, {expected} expected"
            );
            let l = left(&out);
            let f = zero_crossing_frequency(&l[l.len() / 8..]);
            assert!((f - 440.0).abs() < 440.0 * 0.003, "tempo {tempo}: {f} Hz");
            // The joins do not dent the level.
            let env = envelope(&l[4800..], 480);
            let (lo, hi) = min_max(&env);
            assert!(lo > 0.3 && hi < 0.38, "tempo {tempo}: level {lo}..{hi}");
        }
    }

    #[test]
    fn a_long_skip_carries_over_to_later_input() {
        // Tempo 8 skips ~8 sequences of input per sequence out, more than one call holds.
        let input = sine(300.0, 0.5, 4.0);
        let mut w = Wsola::new(8.0);
        let mut out = Vec::new();
        for block in input.chunks(960) {
            w.process(block, &mut out);
        }
        let expected = input.len() as f64 / 2.0 / 8.0;
        assert!((out.len() as f64 / 2.0 - expected).abs() < 5000.0);
        assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 0.5001));
    }
}
