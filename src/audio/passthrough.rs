//! Opus passthrough: a source that already is what Discord wants — Opus, 48 kHz, stereo, one
//! 20 ms frame per packet — is sent as its own packets, byte for byte, while no filter is
//! active and the player volume is 100. No decode, no encode.
//!
//! The pipeline switches to decoding when a filter or the volume comes on (or a packet of
//! another duration turns up) and back when they go off. The switch keeps the timeline exact:
//! - into decoding, the Opus decoder is first primed with the last packets sent (so it has the
//!   state a listener's decoder has), and the encoder is fed `lookahead` samples ahead, primed
//!   with the audio of those packets and its first frames dropped, so the first encoded frame
//!   carries exactly the next packet's audio and continues the listener's decoder state
//!   smoothly (one priming frame leaves a clear transient; two do not);
//! - back out, the encoder has just consumed the lookahead part of the last packet read, whose
//!   audio it has not emitted yet: that packet is sent as is, and passthrough goes on after it.
//!
//! This module holds the state of that dance and the rules of eligibility; the pipeline moves
//! the audio.

use std::collections::VecDeque;

use symphonia::core::packet::Packet;

use super::resample::{FRAME_SAMPLES, OUTPUT_RATE};

/// Encoder frames (and packets of audio) used to prime the switch into decoding.
pub(crate) const PRIME_PACKETS: usize = 2;

/// Packets remembered: the priming ones plus one that only warms the decoder up.
pub(crate) const HISTORY: usize = PRIME_PACKETS + 1;

/// Which path frames take right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Source packets are the frames.
    Packets,
    /// Packets are decoded and frames encoded.
    Transcode,
}

/// Passthrough state of a track whose source qualifies.
pub(crate) struct Passthrough {
    pub(crate) mode: Mode,
    /// The last packets read from the source (sent, or decoded), oldest first, each with
    /// whether it is one 20 ms frame.
    history: VecDeque<(Packet, bool)>,
    /// In transcode mode: the decoded audio waiting for the encoder starts exactly `lookahead`
    /// samples into the last packet read (so that packet can be sent next).
    pub(crate) aligned: bool,
}

impl Passthrough {
    pub(crate) fn new() -> Self {
        Passthrough {
            mode: Mode::Packets,
            history: VecDeque::with_capacity(HISTORY),
            aligned: false,
        }
    }

    /// Remembers the packet just read.
    pub(crate) fn remember(&mut self, packet: Packet, is_frame: bool) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((packet, is_frame));
    }

    /// The last packet read, if it is one 20 ms frame.
    pub(crate) fn last_frame_packet(&self) -> Option<&Packet> {
        self.history.back().filter(|(_, f)| *f).map(|(p, _)| p)
    }

    /// How many packets are remembered, if they all are 20 ms frames (else 0).
    pub(crate) fn frame_history_len(&self) -> usize {
        if self.history.iter().all(|(_, f)| *f) {
            self.history.len()
        } else {
            0
        }
    }

    /// Takes the oldest remembered packet.
    pub(crate) fn pop_oldest(&mut self) -> Option<Packet> {
        self.history.pop_front().map(|(p, _)| p)
    }

    /// Forgets the history (after a seek).
    pub(crate) fn reset(&mut self) {
        self.mode = Mode::Packets;
        self.history.clear();
        self.aligned = false;
    }
}

/// Whether a track can be passed through at all: Opus, stereo, 48 kHz.
pub(crate) fn source_qualifies(is_opus: bool, channels: usize, rate: Option<u32>) -> bool {
    is_opus && channels == 2 && rate.is_none_or(|r| r == OUTPUT_RATE)
}

/// Samples per channel at 48 kHz in an Opus packet, from its table-of-contents byte.
pub(crate) fn opus_packet_samples(data: &[u8]) -> Option<usize> {
    opus::packet::get_nb_samples(data, OUTPUT_RATE).ok()
}

/// Whether a packet is exactly one 20 ms frame: its TOC says 960 samples and the container's
/// duration for it (`container_frames` at 48 kHz, 0 when the container gives none) agrees
/// within a millisecond. Packets the container trims (the last one, usually) do not qualify.
pub(crate) fn is_frame_packet(data: &[u8], container_frames: i64) -> bool {
    opus_packet_samples(data) == Some(FRAME_SAMPLES)
        && (container_frames == 0 || (container_frames - FRAME_SAMPLES as i64).abs() <= 48)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualification() {
        assert!(source_qualifies(true, 2, Some(48_000)));
        assert!(source_qualifies(true, 2, None));
        assert!(!source_qualifies(true, 1, Some(48_000)));
        assert!(!source_qualifies(false, 2, Some(48_000)));
        assert!(!source_qualifies(true, 2, Some(24_000)));
    }

    #[test]
    fn frame_packets_are_recognised_from_the_toc() {
        // TOC config 31 = CELT FB 20 ms, code 0 = one frame.
        let celt_20ms = [31u8 << 3, 0, 0];
        assert!(is_frame_packet(&celt_20ms, 0));
        assert!(is_frame_packet(&celt_20ms, 960));
        assert!(
            !is_frame_packet(&celt_20ms, 600),
            "trimmed by the container"
        );
        // Config 30 = CELT FB 10 ms.
        assert!(!is_frame_packet(&[30u8 << 3, 0], 0));
        // Two 10 ms frames (code 1) make 20 ms.
        assert!(is_frame_packet(&[(30u8 << 3) | 1, 0, 0], 0));
        assert!(!is_frame_packet(&[], 0));
    }
}
