//! Transport encryption of voice packets: the two "rtpsize" AEAD modes Discord still accepts.
//!
//! Packet layout after sealing: `RTP header | ciphertext | 16-byte tag | 4-byte nonce suffix`.
//! The RTP header (12 bytes for what we send) is the additional data. The nonce suffix is a
//! big-endian counter; the AEAD nonce is those 4 bytes followed by zeros (12 bytes for
//! AES-256-GCM, 24 for XChaCha20-Poly1305). The retired xsalsa20 modes are deliberately absent.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;

/// Length of the AEAD tag that follows the ciphertext.
pub const TAG_LEN: usize = 16;
/// Length of the nonce counter that ends every packet.
pub const NONCE_SUFFIX_LEN: usize = 4;
/// Length of the `secret_key` in Session Description.
pub const SECRET_KEY_LEN: usize = 32;

/// A transport encryption mode, by its name on the voice gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncryptionMode {
    /// `aead_aes256_gcm_rtpsize`: preferred when the server offers it.
    Aes256GcmRtpSize,
    /// `aead_xchacha20_poly1305_rtpsize`: always offered, always supported.
    XChaCha20Poly1305RtpSize,
}

impl EncryptionMode {
    /// The modes we implement, most preferred first.
    pub const PREFERENCE: [EncryptionMode; 2] = [
        EncryptionMode::Aes256GcmRtpSize,
        EncryptionMode::XChaCha20Poly1305RtpSize,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionMode::Aes256GcmRtpSize => "aead_aes256_gcm_rtpsize",
            EncryptionMode::XChaCha20Poly1305RtpSize => "aead_xchacha20_poly1305_rtpsize",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::PREFERENCE.into_iter().find(|m| m.as_str() == name)
    }

    /// Picks the mode to select from the list in Ready: AES-GCM when offered, else XChaCha.
    pub fn choose<S: AsRef<str>>(offered: &[S]) -> Option<Self> {
        Self::PREFERENCE
            .into_iter()
            .find(|m| offered.iter().any(|o| o.as_ref() == m.as_str()))
    }

    /// Bytes this mode adds after the payload (tag + nonce suffix).
    pub const fn overhead(self) -> usize {
        TAG_LEN + NONCE_SUFFIX_LEN
    }
}

/// Why sealing or opening a packet failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("secret key must be {SECRET_KEY_LEN} bytes, got {0}")]
    BadKeyLength(usize),
    #[error("packet buffer too small")]
    BufferTooSmall,
    #[error("packet too short to hold a tag and nonce")]
    PacketTooShort,
    #[error("authentication failed")]
    Authentication,
}

/// AES-GCM keeps its expanded key schedule inline; boxing keeps `TransportCipher` small.
enum Cipher {
    Aes(Box<Aes256Gcm>),
    XChaCha(Box<XChaCha20Poly1305>),
}

/// A keyed transport cipher for one voice session. Sealing needs `&self` only and allocates
/// nothing.
pub struct TransportCipher {
    mode: EncryptionMode,
    cipher: Cipher,
}

impl std::fmt::Debug for TransportCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportCipher")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The 12-byte AES-GCM nonce for a counter value: the counter big-endian, then zeros.
pub fn aes_gcm_nonce(counter: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&counter.to_be_bytes());
    n
}

/// The 24-byte XChaCha20 nonce for a counter value: the counter big-endian, then zeros.
pub fn xchacha_nonce(counter: u32) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..4].copy_from_slice(&counter.to_be_bytes());
    n
}

impl TransportCipher {
    pub fn new(mode: EncryptionMode, key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != SECRET_KEY_LEN {
            return Err(CryptoError::BadKeyLength(key.len()));
        }
        let cipher = match mode {
            EncryptionMode::Aes256GcmRtpSize => Cipher::Aes(Box::new(
                Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength(key.len()))?,
            )),
            EncryptionMode::XChaCha20Poly1305RtpSize => Cipher::XChaCha(Box::new(
                XChaCha20Poly1305::new_from_slice(key)
                    .map_err(|_| CryptoError::BadKeyLength(key.len()))?,
            )),
        };
        Ok(TransportCipher { mode, cipher })
    }

    pub fn mode(&self) -> EncryptionMode {
        self.mode
    }

    /// Seals a packet in place. `packet[..header_len]` is the RTP header (authenticated, not
    /// encrypted), `packet[header_len..header_len + payload_len]` the payload. Writes the tag
    /// and the nonce suffix after the payload and returns the total packet length.
    pub fn seal(
        &self,
        packet: &mut [u8],
        header_len: usize,
        payload_len: usize,
        nonce_counter: u32,
    ) -> Result<usize, CryptoError> {
        let body_end = header_len + payload_len;
        let total = body_end + TAG_LEN + NONCE_SUFFIX_LEN;
        if packet.len() < total {
            return Err(CryptoError::BufferTooSmall);
        }
        let (aad, rest) = packet.split_at_mut(header_len);
        let (body, trailer) = rest.split_at_mut(payload_len);
        let tag = match &self.cipher {
            Cipher::Aes(c) => c
                .encrypt_in_place_detached(&aes_gcm_nonce(nonce_counter).into(), aad, body)
                .map_err(|_| CryptoError::BufferTooSmall)?,
            Cipher::XChaCha(c) => c
                .encrypt_in_place_detached(&xchacha_nonce(nonce_counter).into(), aad, body)
                .map_err(|_| CryptoError::BufferTooSmall)?,
        };
        trailer[..TAG_LEN].copy_from_slice(&tag);
        trailer[TAG_LEN..TAG_LEN + NONCE_SUFFIX_LEN].copy_from_slice(&nonce_counter.to_be_bytes());
        Ok(total)
    }

    /// Opens a sealed packet in place (the receiving side of [`Self::seal`]); returns the
    /// nonce counter and the plaintext range `packet[header_len..end]`.
    pub fn open(&self, packet: &mut [u8], header_len: usize) -> Result<(u32, usize), CryptoError> {
        if packet.len() < header_len + TAG_LEN + NONCE_SUFFIX_LEN {
            return Err(CryptoError::PacketTooShort);
        }
        let nonce_at = packet.len() - NONCE_SUFFIX_LEN;
        let counter = u32::from_be_bytes(packet[nonce_at..].try_into().expect("4 bytes"));
        let tag_at = nonce_at - TAG_LEN;
        let tag: [u8; TAG_LEN] = packet[tag_at..nonce_at].try_into().expect("16 bytes");
        let (aad, rest) = packet.split_at_mut(header_len);
        let body = &mut rest[..tag_at - header_len];
        let ok = match &self.cipher {
            Cipher::Aes(c) => c.decrypt_in_place_detached(
                &aes_gcm_nonce(counter).into(),
                aad,
                body,
                (&tag).into(),
            ),
            Cipher::XChaCha(c) => c.decrypt_in_place_detached(
                &xchacha_nonce(counter).into(),
                aad,
                body,
                (&tag).into(),
            ),
        };
        ok.map_err(|_| CryptoError::Authentication)?;
        Ok((counter, tag_at))
    }
}

#[cfg(test)]
mod tests {
    //! The independent side of these tests is aws-lc-rs (AES-256-GCM, ChaCha20-Poly1305) plus a
    //! hand-written HChaCha20 checked against the XChaCha draft's test vector.
    use super::*;
    use crate::voice::rtp::{RTP_HEADER_LEN, RtpHeader};
    use aws_lc_rs::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

    fn key() -> [u8; 32] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(7).wrapping_add(3))
    }

    fn sealed_packet(mode: EncryptionMode, counter: u32, payload: &[u8]) -> Vec<u8> {
        let cipher = TransportCipher::new(mode, &key()).unwrap();
        let mut p = vec![0u8; RTP_HEADER_LEN + payload.len() + mode.overhead()];
        let mut h = [0u8; RTP_HEADER_LEN];
        RtpHeader {
            sequence: 4242,
            timestamp: 960 * 17,
            ssrc: 0xDEAD_BEEF,
        }
        .write(&mut h);
        p[..RTP_HEADER_LEN].copy_from_slice(&h);
        p[RTP_HEADER_LEN..RTP_HEADER_LEN + payload.len()].copy_from_slice(payload);
        let n = cipher
            .seal(&mut p, RTP_HEADER_LEN, payload.len(), counter)
            .unwrap();
        assert_eq!(n, p.len());
        p
    }

    fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        s[a] = s[a].wrapping_add(s[b]);
        s[d] = (s[d] ^ s[a]).rotate_left(16);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = (s[b] ^ s[c]).rotate_left(12);
        s[a] = s[a].wrapping_add(s[b]);
        s[d] = (s[d] ^ s[a]).rotate_left(8);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = (s[b] ^ s[c]).rotate_left(7);
    }

    /// HChaCha20 (XChaCha draft §2.2), written out independently of the crate under test.
    fn hchacha20(key: &[u8; 32], input: &[u8; 16]) -> [u8; 32] {
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut s = [0u32; 16];
        s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        for i in 0..8 {
            s[4 + i] = word(&key[4 * i..]);
        }
        for i in 0..4 {
            s[12 + i] = word(&input[4 * i..]);
        }
        for _ in 0..10 {
            quarter(&mut s, 0, 4, 8, 12);
            quarter(&mut s, 1, 5, 9, 13);
            quarter(&mut s, 2, 6, 10, 14);
            quarter(&mut s, 3, 7, 11, 15);
            quarter(&mut s, 0, 5, 10, 15);
            quarter(&mut s, 1, 6, 11, 12);
            quarter(&mut s, 2, 7, 8, 13);
            quarter(&mut s, 3, 4, 9, 14);
        }
        let mut out = [0u8; 32];
        for (i, w) in s[..4].iter().chain(&s[12..]).enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    #[test]
    fn hand_written_hchacha20_matches_the_draft_vector() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let input = [
            0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x4a, 0x00, 0x00, 0x00, 0x00, 0x31, 0x41,
            0x59, 0x27,
        ];
        let expected = [
            0x82, 0x41, 0x3b, 0x42, 0x27, 0xb2, 0x7b, 0xfe, 0xd3, 0x0e, 0x42, 0x50, 0x8a, 0x87,
            0x7d, 0x73, 0xa0, 0xf9, 0xe4, 0xd5, 0x8a, 0x74, 0xa8, 0x53, 0xc1, 0x2e, 0xc4, 0x13,
            0x26, 0xd3, 0xec, 0xdc,
        ];
        assert_eq!(hchacha20(&key, &input), expected);
    }

    /// Opens `packet` with aws-lc-rs, computing the nonce from the suffix as the spec says.
    fn independent_open(mode: EncryptionMode, packet: &[u8]) -> Option<Vec<u8>> {
        let suffix: [u8; 4] = packet[packet.len() - 4..].try_into().unwrap();
        let aad = &packet[..RTP_HEADER_LEN];
        let mut body = packet[RTP_HEADER_LEN..packet.len() - 4].to_vec();
        let (alg, key_bytes, nonce) = match mode {
            EncryptionMode::Aes256GcmRtpSize => {
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(&suffix);
                (&AES_256_GCM, key(), n)
            }
            EncryptionMode::XChaCha20Poly1305RtpSize => {
                let mut x = [0u8; 24];
                x[..4].copy_from_slice(&suffix);
                let sub = hchacha20(&key(), x[..16].try_into().unwrap());
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&x[16..]);
                (&CHACHA20_POLY1305, sub, n)
            }
        };
        let k = LessSafeKey::new(UnboundKey::new(alg, &key_bytes).unwrap());
        let plain = k
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .ok()?;
        Some(plain.to_vec())
    }

    #[test]
    fn both_modes_decrypt_with_an_independent_implementation() {
        let payload: Vec<u8> = (0..173u32).map(|i| (i * 31 % 251) as u8).collect();
        for mode in EncryptionMode::PREFERENCE {
            for counter in [0u32, 1, 0x0102_0304, u32::MAX] {
                let p = sealed_packet(mode, counter, &payload);
                assert_eq!(&p[p.len() - 4..], &counter.to_be_bytes(), "{mode:?}");
                assert_ne!(
                    &p[12..12 + payload.len()],
                    &payload[..],
                    "{mode:?} not encrypted"
                );
                assert_eq!(
                    independent_open(mode, &p).as_deref(),
                    Some(&payload[..]),
                    "{mode:?} counter {counter}"
                );
            }
        }
    }

    #[test]
    fn header_is_authenticated_and_round_trip_works() {
        for mode in EncryptionMode::PREFERENCE {
            let mut p = sealed_packet(mode, 99, b"opus!");
            let cipher = TransportCipher::new(mode, &key()).unwrap();
            let mut ok = p.clone();
            let (counter, end) = cipher.open(&mut ok, RTP_HEADER_LEN).unwrap();
            assert_eq!((counter, &ok[12..end]), (99, &b"opus!"[..]));
            p[3] ^= 1; // flip a sequence bit
            assert_eq!(
                cipher.open(&mut p.clone(), RTP_HEADER_LEN),
                Err(CryptoError::Authentication)
            );
            assert!(independent_open(mode, &p).is_none());
        }
    }

    #[test]
    fn mode_choice_prefers_aes_and_never_picks_xsalsa() {
        assert_eq!(
            EncryptionMode::choose(&[
                "xsalsa20_poly1305",
                "aead_xchacha20_poly1305_rtpsize",
                "aead_aes256_gcm_rtpsize"
            ]),
            Some(EncryptionMode::Aes256GcmRtpSize)
        );
        assert_eq!(
            EncryptionMode::choose(&["xsalsa20_poly1305_lite", "aead_xchacha20_poly1305_rtpsize"]),
            Some(EncryptionMode::XChaCha20Poly1305RtpSize)
        );
        assert_eq!(
            EncryptionMode::choose(&["xsalsa20_poly1305", "aead_aes256_gcm"]),
            None
        );
        assert_eq!(
            TransportCipher::new(EncryptionMode::Aes256GcmRtpSize, &[0; 16]).err(),
            Some(CryptoError::BadKeyLength(16))
        );
    }

    #[test]
    fn seal_refuses_a_short_buffer() {
        let c = TransportCipher::new(EncryptionMode::XChaCha20Poly1305RtpSize, &key()).unwrap();
        let mut p = [0u8; 12 + 10 + 19];
        assert_eq!(c.seal(&mut p, 12, 10, 0), Err(CryptoError::BufferTooSmall));
    }
}
