//! The RTP header of a Discord voice packet and the per-stream counters behind it.
//!
//! Discord voice packets start with a fixed 12-byte RTP header: version 2, no padding, no
//! extension, no CSRCs, payload type 120 (Opus), then sequence, timestamp and SSRC, all
//! big-endian. The sequence goes up by one per packet and the timestamp by 960 (20 ms at
//! 48 kHz) per frame; both start at random values.

use rand::Rng;

/// Length of the header we send (no CSRCs, no extension).
pub const RTP_HEADER_LEN: usize = 12;
/// First header byte: version 2, no padding, no extension, CSRC count 0.
pub const RTP_FIRST_BYTE: u8 = 0x80;
/// Second header byte: marker 0, payload type 120 (Opus).
pub const RTP_PAYLOAD_TYPE_OPUS: u8 = 0x78;
/// Samples per channel in one 20 ms frame at 48 kHz.
pub const SAMPLES_PER_FRAME: u32 = 960;
/// The Opus frame Discord expects as "silence" (sent five times when audio stops).
pub const OPUS_SILENCE_FRAME: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// A UDP keepalive: the stream's SSRC, big-endian, and nothing else (4 bytes; the form
/// songbird sends). Discord does not document it; voice clients send one every 5 s so that NAT
/// mappings on the way to the voice server do not expire while no audio flows.
pub fn keepalive(ssrc: u32) -> [u8; 4] {
    ssrc.to_be_bytes()
}

/// The fields of an RTP header that change between packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Why a received packet is not a voice RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("packet of {0} bytes is shorter than an RTP header")]
    TooShort(usize),
    #[error("RTP version {0} is not 2")]
    BadVersion(u8),
    #[error("RTP header extension runs past the end of the packet")]
    TruncatedExtension,
}

impl RtpHeader {
    /// Writes the 12-byte header we send.
    pub fn write(&self, out: &mut [u8; RTP_HEADER_LEN]) {
        out[0] = RTP_FIRST_BYTE;
        out[1] = RTP_PAYLOAD_TYPE_OPUS;
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }

    /// Reads a header and returns it with the length of the unencrypted part that serves as
    /// AEAD additional data in the rtpsize modes: the fixed header, any CSRCs and, when the X
    /// bit is set, the 4-byte extension preamble (the extension body itself is encrypted).
    pub fn parse(packet: &[u8]) -> Result<(RtpHeader, usize), RtpError> {
        if packet.len() < RTP_HEADER_LEN {
            return Err(RtpError::TooShort(packet.len()));
        }
        let version = packet[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let csrc_count = usize::from(packet[0] & 0x0F);
        let mut len = RTP_HEADER_LEN + 4 * csrc_count;
        if packet[0] & 0x10 != 0 {
            len += 4;
        }
        if packet.len() < len {
            return Err(RtpError::TruncatedExtension);
        }
        let header = RtpHeader {
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        };
        Ok((header, len))
    }
}

/// The counters of one outgoing stream: RTP sequence and timestamp, and the transport nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpStream {
    pub header: RtpHeader,
    /// The 4-byte AEAD nonce counter sent after each packet's tag.
    pub nonce: u32,
}

impl RtpStream {
    /// A stream for `ssrc` with random initial sequence, timestamp and nonce.
    pub fn new_random(ssrc: u32, rng: &mut impl Rng) -> Self {
        RtpStream {
            header: RtpHeader {
                sequence: rng.random(),
                timestamp: rng.random(),
                ssrc,
            },
            nonce: rng.random(),
        }
    }

    /// Moves on after a packet was sent: sequence +1, timestamp +960, nonce +1 (all wrapping).
    pub fn advance(&mut self) {
        self.header.sequence = self.header.sequence.wrapping_add(1);
        self.header.timestamp = self.header.timestamp.wrapping_add(SAMPLES_PER_FRAME);
        self.nonce = self.nonce.wrapping_add(1);
    }

    /// Skips a nonce value without sending a packet (a nonce is never used twice, even for a
    /// packet the socket refused).
    pub fn burn_nonce(&mut self) {
        self.nonce = self.nonce.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn header_layout_is_big_endian_with_fixed_first_bytes() {
        let h = RtpHeader {
            sequence: 0x0102,
            timestamp: 0x0304_0506,
            ssrc: 0x0708_090A,
        };
        let mut out = [0u8; RTP_HEADER_LEN];
        h.write(&mut out);
        assert_eq!(
            out,
            [
                0x80, 0x78, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A
            ]
        );
        assert_eq!(RtpHeader::parse(&out), Ok((h, 12)));
    }

    #[test]
    fn parse_counts_csrcs_and_extension_preamble() {
        let mut p = vec![0u8; 40];
        p[0] = 0x80 | 0x10 | 2; // X set, two CSRCs
        assert_eq!(RtpHeader::parse(&p).unwrap().1, 12 + 8 + 4);
        assert_eq!(
            RtpHeader::parse(&p[..20]),
            Err(RtpError::TruncatedExtension)
        );
        assert_eq!(RtpHeader::parse(&p[..5]), Err(RtpError::TooShort(5)));
        p[0] = 0x40;
        assert_eq!(RtpHeader::parse(&p), Err(RtpError::BadVersion(1)));
    }

    #[test]
    fn stream_advances_by_one_and_960_and_wraps() {
        let mut s = RtpStream {
            header: RtpHeader {
                sequence: u16::MAX,
                timestamp: u32::MAX - 100,
                ssrc: 9,
            },
            nonce: u32::MAX,
        };
        s.advance();
        assert_eq!(s.header.sequence, 0);
        assert_eq!(s.header.timestamp, 859);
        assert_eq!(s.nonce, 0);
        assert_eq!(s.header.ssrc, 9);
        s.burn_nonce();
        assert_eq!((s.header.sequence, s.nonce), (0, 1));
    }

    #[test]
    fn random_starts_differ_between_streams() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = RtpStream::new_random(1, &mut rng);
        let b = RtpStream::new_random(1, &mut rng);
        assert_ne!(
            (a.header.sequence, a.header.timestamp, a.nonce),
            (b.header.sequence, b.header.timestamp, b.nonce)
        );
    }
}
