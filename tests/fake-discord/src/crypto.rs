//! Transport encryption of voice packets: the two "rtpsize" AEAD modes Discord still accepts.
//!
//! Packet layout: RTP header (authenticated, not encrypted), ciphertext, 16-byte tag, then a
//! 4-byte big-endian nonce counter. The AEAD nonce is those 4 bytes followed by zeros (12 bytes
//! for AES-256-GCM, 24 for XChaCha20-Poly1305). The removed xsalsa20 modes are not supported.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;
use serde::{Deserialize, Serialize};

use crate::wire::RtpHeader;

/// An encryption mode the server can offer in Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    #[serde(rename = "aead_aes256_gcm_rtpsize")]
    Aes256Gcm,
    #[serde(rename = "aead_xchacha20_poly1305_rtpsize")]
    XChaCha20Poly1305,
}

impl Mode {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Aes256Gcm => "aead_aes256_gcm_rtpsize",
            Mode::XChaCha20Poly1305 => "aead_xchacha20_poly1305_rtpsize",
        }
    }

    /// Parses a wire name; `None` for anything else (including every xsalsa20 mode).
    pub fn from_wire(name: &str) -> Option<Mode> {
        match name {
            "aead_aes256_gcm_rtpsize" => Some(Mode::Aes256Gcm),
            "aead_xchacha20_poly1305_rtpsize" => Some(Mode::XChaCha20Poly1305),
            _ => None,
        }
    }
}

/// Tag length of both modes.
pub const TAG_LEN: usize = 16;
/// Length of the nonce counter appended to each packet.
pub const NONCE_SUFFIX_LEN: usize = 4;

/// Why a packet could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptError {
    /// Shorter than header + tag + nonce.
    TooShort,
    /// Authentication failed (wrong key, nonce, AAD or tampered bytes).
    Auth,
    /// The decrypted payload is shorter than the declared header extension.
    BadExtension,
}

/// A transport cipher for one session key.
#[derive(Clone)]
pub enum TransportCipher {
    Aes(Box<Aes256Gcm>),
    XChaCha(Box<XChaCha20Poly1305>),
}

/// A decrypted voice packet.
#[derive(Debug, Clone)]
pub struct Decrypted {
    pub header: RtpHeader,
    /// The 4-byte nonce counter.
    pub nonce: u32,
    /// The media frame (Opus, or a DAVE frame), with any header-extension body removed.
    pub payload: Vec<u8>,
}

impl TransportCipher {
    pub fn new(mode: Mode, key: &[u8; 32]) -> TransportCipher {
        match mode {
            Mode::Aes256Gcm => TransportCipher::Aes(Box::new(
                Aes256Gcm::new_from_slice(key).expect("32-byte key"),
            )),
            Mode::XChaCha20Poly1305 => TransportCipher::XChaCha(Box::new(
                XChaCha20Poly1305::new_from_slice(key).expect("32-byte key"),
            )),
        }
    }

    /// Decrypts one voice packet.
    pub fn decrypt(&self, packet: &[u8]) -> Result<Decrypted, DecryptError> {
        let header = RtpHeader::parse(packet).ok_or(DecryptError::TooShort)?;
        if packet.len() < header.aad_len + TAG_LEN + NONCE_SUFFIX_LEN {
            return Err(DecryptError::TooShort);
        }
        let (body, nonce_bytes) = packet.split_at(packet.len() - NONCE_SUFFIX_LEN);
        let (aad, rest) = body.split_at(header.aad_len);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut buf = ciphertext.to_vec();
        let ok = match self {
            TransportCipher::Aes(c) => {
                let mut nonce = [0u8; 12];
                nonce[..4].copy_from_slice(nonce_bytes);
                c.decrypt_in_place_detached(&nonce.into(), aad, &mut buf, tag.into())
            }
            TransportCipher::XChaCha(c) => {
                let mut nonce = [0u8; 24];
                nonce[..4].copy_from_slice(nonce_bytes);
                c.decrypt_in_place_detached(&nonce.into(), aad, &mut buf, tag.into())
            }
        };
        ok.map_err(|_| DecryptError::Auth)?;
        if buf.len() < header.extension_body_len {
            return Err(DecryptError::BadExtension);
        }
        buf.drain(..header.extension_body_len);
        Ok(Decrypted {
            header,
            nonce: u32::from_be_bytes(nonce_bytes.try_into().expect("4 bytes")),
            payload: buf,
        })
    }

    /// Builds an encrypted voice packet (12-byte header, no CSRC or extension) the way a
    /// client does; used by tests and by the crate's own probe client.
    pub fn encrypt(
        &self,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        nonce: u32,
        frame: &[u8],
    ) -> Vec<u8> {
        let mut header = [0u8; 12];
        header[0] = 0x80;
        header[1] = 0x78;
        header[2..4].copy_from_slice(&sequence.to_be_bytes());
        header[4..8].copy_from_slice(&timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&ssrc.to_be_bytes());
        let mut buf = frame.to_vec();
        let tag = match self {
            TransportCipher::Aes(c) => {
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(&nonce.to_be_bytes());
                c.encrypt_in_place_detached(&n.into(), &header, &mut buf)
                    .expect("encrypt")
                    .to_vec()
            }
            TransportCipher::XChaCha(c) => {
                let mut n = [0u8; 24];
                n[..4].copy_from_slice(&nonce.to_be_bytes());
                c.encrypt_in_place_detached(&n.into(), &header, &mut buf)
                    .expect("encrypt")
                    .to_vec()
            }
        };
        let mut out = Vec::with_capacity(12 + buf.len() + TAG_LEN + NONCE_SUFFIX_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&nonce.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const KEY: [u8; 32] = {
        let mut k = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            k[i] = i as u8;
            i += 1;
        }
        k
    };

    // The expected packets below were computed outside Rust, with Python's `cryptography`
    // package (AESGCM; XChaCha20-Poly1305 as HChaCha20 subkey + ChaCha20Poly1305), for
    // header 80 78 0001 000003c0 00000009, nonce counter 0x01020304, key 00..1f and the
    // plaintext "acoustic opus frame".
    const PLAINTEXT: &[u8] = b"acoustic opus frame";
    const AES_PACKET: &str = include_str!("../testdata/aes_packet.hex");
    const XCHACHA_PACKET: &str = include_str!("../testdata/xchacha_packet.hex");

    #[test]
    fn aes_gcm_matches_independent_vector() {
        let c = TransportCipher::new(Mode::Aes256Gcm, &KEY);
        let expected = hex(AES_PACKET.trim());
        assert_eq!(c.encrypt(1, 960, 9, 0x01020304, PLAINTEXT), expected);
        let d = c.decrypt(&expected).unwrap();
        assert_eq!(d.payload, PLAINTEXT);
        assert_eq!(d.nonce, 0x01020304);
        assert_eq!(d.header.sequence, 1);
        assert_eq!(d.header.timestamp, 960);
        assert_eq!(d.header.ssrc, 9);
    }

    #[test]
    fn xchacha_matches_independent_vector() {
        let c = TransportCipher::new(Mode::XChaCha20Poly1305, &KEY);
        let expected = hex(XCHACHA_PACKET.trim());
        assert_eq!(c.encrypt(1, 960, 9, 0x01020304, PLAINTEXT), expected);
        assert_eq!(c.decrypt(&expected).unwrap().payload, PLAINTEXT);
    }

    #[test]
    fn tampering_is_detected() {
        for mode in [Mode::Aes256Gcm, Mode::XChaCha20Poly1305] {
            let c = TransportCipher::new(mode, &KEY);
            let pkt = c.encrypt(5, 4800, 9, 7, PLAINTEXT);
            // header is authenticated
            let mut bad = pkt.clone();
            bad[3] ^= 1;
            assert_eq!(c.decrypt(&bad).unwrap_err(), DecryptError::Auth);
            // nonce counter is the nonce
            let mut bad = pkt.clone();
            let n = bad.len() - 1;
            bad[n] ^= 1;
            assert_eq!(c.decrypt(&bad).unwrap_err(), DecryptError::Auth);
            // wrong key
            let other = TransportCipher::new(mode, &[9u8; 32]);
            assert_eq!(other.decrypt(&pkt).unwrap_err(), DecryptError::Auth);
            assert_eq!(c.decrypt(&pkt[..20]).unwrap_err(), DecryptError::TooShort);
        }
    }

    #[test]
    fn modes_on_the_wire() {
        assert_eq!(
            Mode::from_wire("aead_aes256_gcm_rtpsize"),
            Some(Mode::Aes256Gcm)
        );
        assert_eq!(
            Mode::from_wire(Mode::XChaCha20Poly1305.as_str()),
            Some(Mode::XChaCha20Poly1305)
        );
        assert_eq!(Mode::from_wire("xsalsa20_poly1305"), None);
        assert_eq!(Mode::from_wire("aead_aes256_gcm"), None);
    }
}
