//! The last step of the transcode path: float → 16-bit, player volume on the 16-bit samples
//! (Lavalink's curve, [`super::volume`]), and Opus encoding of one 20 ms stereo frame
//! (libopus, application "audio").
//!
//! At volume 100 (an exact bypass) the 16-bit step would only quantise: libopus (a float
//! build) turns 16-bit input straight back into floats. So the frame goes to libopus as
//! floats, clipped to the range 16-bit samples have; the sound differs from the 16-bit route
//! only by the absent quantisation noise (−96 dBFS).
//!
//! The encoder looks `lookahead()` samples ahead: the audio of encoded frame `k` is the input
//! shifted back by that much. The pipeline feeds it that far ahead and throws away the first
//! frame after a (re)start, so decoded output lines up with the source with no leading gap.

use super::pipeline::AudioError;
use super::resample::{FRAME_SAMPLES, OUTPUT_RATE};
use super::volume::PlayerVolume;

/// Largest packet libopus makes for one 20 ms frame.
pub(crate) const MAX_FRAME_PACKET: usize = 1275;

/// Encodes 20 ms stereo frames.
pub(crate) struct FrameEncoder {
    encoder: opus::Encoder,
    pcm: Box<[i16; FRAME_SAMPLES * 2]>,
    /// The frame clipped, for the float route at volume 100.
    clipped: Box<[f32; FRAME_SAMPLES * 2]>,
    lookahead: usize,
    /// The player volume last used (its multiplier is computed once per change).
    volume: PlayerVolume,
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
            clipped: Box::new([0.0; FRAME_SAMPLES * 2]),
            lookahead,
            volume: PlayerVolume::default(),
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
        let max = out.len().min(MAX_FRAME_PACKET);
        if volume == i32::from(PlayerVolume::DEFAULT) {
            clip(frame, &mut self.clipped[..]);
            return self
                .encoder
                .encode_float(&self.clipped[..], &mut out[..max])
                .map_err(|e| AudioError::Decode(format!("Opus encode: {e}")));
        }
        to_i16(frame, &mut self.pcm[..]);
        if i32::from(self.volume.level()) != volume {
            self.volume = PlayerVolume::new(i64::from(volume));
        }
        self.volume.apply(&mut self.pcm[..]);
        self.encoder
            .encode(&self.pcm[..], &mut out[..max])
            .map_err(|e| AudioError::Decode(format!("Opus encode: {e}")))
    }
}

/// Clip to what 16-bit samples can hold, [-1, 32767/32768]; NaN becomes 0 (as in [`to_i16`]).
fn clip(input: &[f32], out: &mut [f32]) {
    const TOP: f32 = 32767.0 / 32768.0;
    for (o, &s) in out.iter_mut().zip(input) {
        let c = s.clamp(-1.0, TOP);
        *o = if c.is_nan() { 0.0 } else { c };
    }
}

/// Float in [-1, 1] to 16-bit, clipping; NaN becomes 0 (a saturating cast).
pub(crate) fn to_i16(input: &[f32], out: &mut [i16]) {
    for (o, &s) in out.iter_mut().zip(input) {
        *o = (s * 32768.0).clamp(-32768.0, 32767.0) as i16;
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
    fn clipping_matches_the_16_bit_range_and_silences_nan() {
        let mut out = [1.0f32; 5];
        clip(&[0.5, 2.0, -2.0, f32::NAN, f32::NEG_INFINITY], &mut out);
        assert_eq!(out, [0.5, 32767.0 / 32768.0, -1.0, 0.0, -1.0]);
    }

    #[test]
    fn player_volume_scales_what_is_encoded() {
        let frame: Vec<f32> = (0..1920)
            .map(|i| ((i / 2) as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 48_000.0).sin() * 0.5)
            .collect();
        let level = |volume: i32| {
            let mut e = FrameEncoder::new(10).unwrap();
            let mut d = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
            let mut out = [0u8; 4000];
            let mut pcm = vec![0f32; 1920];
            let mut energy = 0.0f64;
            for i in 0..10 {
                let n = e.encode(&frame, volume, &mut out).unwrap();
                d.decode_float(&out[..n], &mut pcm, false).unwrap();
                if i >= 5 {
                    energy += pcm.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>();
                }
            }
            10.0 * energy.log10()
        };
        let unity = level(100);
        // Lavalink's curve: 50 → ×0.4169 (−7.6 dB), 0 → silence.
        assert!((level(50) - unity + 7.6).abs() < 0.3);
        assert!(level(0) < unity - 60.0);
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
