//! The last step of the transcode path: float → 16-bit, player volume on the 16-bit samples,
//! and Opus encoding of one 20 ms stereo frame (libopus, application "audio").
//!
//! The encoder looks `lookahead()` samples ahead: the audio of encoded frame `k` is the input
//! shifted back by that much. The pipeline feeds it that far ahead and throws away the first
//! frame after a (re)start, so decoded output lines up with the source with no leading gap.

use super::pipeline::AudioError;
use super::resample::{FRAME_SAMPLES, OUTPUT_RATE};

/// Largest packet libopus makes for one 20 ms frame.
pub(crate) const MAX_FRAME_PACKET: usize = 1275;

/// Encodes 20 ms stereo frames.
pub(crate) struct FrameEncoder {
    encoder: opus::Encoder,
    pcm: Box<[i16; FRAME_SAMPLES * 2]>,
    lookahead: usize,
}

impl FrameEncoder {
    /// A 48 kHz stereo encoder with the given complexity (0..=10, clamped).
    pub(crate) fn new(complexity: u8) -> Result<Self, AudioError> {
        let err = |e: opus::Error| AudioError::Unsupported(format!("Opus encoder: {e}"));
        let mut encoder = opus::Encoder::new(
            OUTPUT_RATE,
            opus::Channels::Stereo,
            opus::Application::Audio,
        )
        .map_err(err)?;
        encoder
            .set_complexity(i32::from(complexity.min(10)))
            .map_err(err)?;
        let lookahead = encoder.get_lookahead().map_err(err)?.clamp(0, 960) as usize;
        Ok(FrameEncoder {
            encoder,
            pcm: Box::new([0; FRAME_SAMPLES * 2]),
            lookahead,
        })
    }

    /// Samples per channel the encoder delays its input by.
    pub(crate) fn lookahead(&self) -> usize {
        self.lookahead
    }

    /// Forgets all state (new stream position).
    pub(crate) fn reset(&mut self) -> Result<(), AudioError> {
        self.encoder
            .reset_state()
            .map_err(|e| AudioError::Unsupported(format!("Opus encoder reset: {e}")))
    }

    /// Encodes one frame of interleaved stereo floats (exactly 1920 samples) at player volume
    /// `volume` (0..=1000, 100 = unchanged) into `out`; returns the packet length.
    /// Non-finite samples become silence; out-of-range ones are clipped.
    pub(crate) fn encode(
        &mut self,
        frame: &[f32],
        volume: i32,
        out: &mut [u8],
    ) -> Result<usize, AudioError> {
        debug_assert_eq!(frame.len(), FRAME_SAMPLES * 2);
        to_i16(frame, &mut self.pcm[..]);
        if volume != 100 {
            apply_player_volume(&mut self.pcm[..], volume);
        }
        let max = out.len().min(MAX_FRAME_PACKET);
        self.encoder
            .encode(&self.pcm[..], &mut out[..max])
            .map_err(|e| AudioError::Decode(format!("Opus encode: {e}")))
    }
}

/// Float in [-1, 1] to 16-bit, clipping; NaN becomes 0 (a saturating cast).
pub(crate) fn to_i16(input: &[f32], out: &mut [i16]) {
    for (o, &s) in out.iter_mut().zip(input) {
        *o = (s * 32768.0).clamp(-32768.0, 32767.0) as i16;
    }
}

// ---------------------------------------------------------------------------------------------
// SEAM(volume): Lavalink's player-volume curve. `src/audio/volume.rs` (branch `filters`)
// provides the shared implementation; until it is merged, this local copy of the same formula
// stands in. Replace `apply_player_volume` with a call to it when it lands.
// ---------------------------------------------------------------------------------------------

/// Player volume on 16-bit samples, Lavalink's curve: multiplier `m / 10000` with
/// `m = trunc(tan(v · 0.0079) · 10000)` up to 150 and `m = 24621 · v / 150` above; 0 is
/// silence, 100 is exact (no change); results clip to the 16-bit range.
pub(crate) fn apply_player_volume(samples: &mut [i16], volume: i32) {
    let volume = volume.clamp(0, 1000);
    if volume == 100 {
        return;
    }
    if volume == 0 {
        samples.fill(0);
        return;
    }
    let m: i32 = if volume <= 150 {
        ((volume as f64 * 0.0079).tan() * 10000.0) as i32
    } else {
        24621 * volume / 150
    };
    for s in samples {
        *s = (i32::from(*s) * m / 10000).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_clips_and_silences_nan() {
        let mut out = [1i16; 5];
        to_i16(&[0.5, 2.0, -2.0, f32::NAN, f32::NEG_INFINITY], &mut out);
        assert_eq!(out, [16384, 32767, -32768, 0, -32768]);
    }

    #[test]
    fn volume_curve_matches_lavalink() {
        let mut s = [10000i16, -10000];
        apply_player_volume(&mut s, 100);
        assert_eq!(s, [10000, -10000]);
        apply_player_volume(&mut s, 50);
        // tan(50 · 0.0079) = 0.41691… → m = 4169 (−7.6 dB)
        assert_eq!(s, [4169, -4169]);
        // Above 150: m = 24621 · v / 150 (300 → 49242, ×4.9242), clipped to 16 bits.
        let mut s = [1000i16, 10000];
        apply_player_volume(&mut s, 300);
        assert_eq!(s, [4924, 32767]);
        let mut s = [10000i16];
        apply_player_volume(&mut s, 0);
        assert_eq!(s, [0]);
    }

    #[test]
    fn encodes_a_frame_within_the_packet_limit() {
        let mut e = FrameEncoder::new(10).unwrap();
        assert!(e.lookahead() > 0 && e.lookahead() < 960);
        let frame: Vec<f32> = (0..1920)
            .map(|i| ((i / 2) as f32 * 0.05).sin() * 0.5)
            .collect();
        let mut out = [0u8; 4000];
        let n = e.encode(&frame, 100, &mut out).unwrap();
        assert!(n > 0 && n <= MAX_FRAME_PACKET);
    }
}
