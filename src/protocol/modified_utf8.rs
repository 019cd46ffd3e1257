//! Java's *modified UTF-8* strings, the `writeUTF`/`readUTF` format that lavaplayer's track blobs
//! use for every text field.
//!
//! The format differs from UTF-8 in two ways, both of which appear in real blobs:
//! * U+0000 is written as the two bytes `C0 80`, so an encoded string never contains a zero byte;
//! * Java strings are UTF-16, and each UTF-16 code unit is encoded on its own. A character outside
//!   the Basic Multilingual Plane is therefore two surrogates of three bytes each (six bytes in
//!   all, as in CESU-8): `😀` (U+1F600) is `ED A0 BD ED B8 80`, not UTF-8's `F0 9F 98 80`.
//!
//! On the wire a string is a big-endian `u16` byte count followed by that many bytes, so an
//! encoded string holds at most [`MAX_ENCODED_LEN`] bytes.
//!
//! Decisions where Java and Rust strings differ:
//! * **Decoding accepts exactly what Java's `readUTF` accepts.** A byte `0xxxxxxx` is one unit
//!   (a raw `00` byte included), `110xxxxx 10xxxxxx` two bytes, `1110xxxx 10xxxxxx 10xxxxxx` three
//!   bytes. Over-long forms are accepted as Java does; anything else (a stray continuation byte,
//!   a `1111xxxx` lead byte such as standard UTF-8's four-byte form, a bad continuation byte, a
//!   sequence cut off by the end of the string) is [`MalformedString`].
//! * **Unpaired surrogates** are valid in a Java string but cannot be in a Rust `String`: each
//!   unpaired surrogate decodes to U+FFFD (the replacement character), never an error or a panic.
//!   Re-encoding such a string therefore writes `EF BF BD` where the blob had the lone surrogate.
//! * **Strings too long for the `u16` prefix**: [`write_utf`] refuses them with
//!   [`StringTooLong`] (as Java's `writeUTF` throws); [`truncate_to_fit`] and
//!   [`write_utf_truncated`] keep the longest prefix, cut at a character boundary, that fits, for
//!   callers that must always produce a blob.

use std::fmt;

/// The most bytes one encoded string may hold (its length prefix is a `u16`).
pub const MAX_ENCODED_LEN: usize = u16::MAX as usize;

/// The bytes are not a valid modified UTF-8 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed modified UTF-8 at byte {offset}")]
pub struct MalformedString {
    /// Offset, within the string's bytes, of the sequence that could not be decoded.
    pub offset: usize,
}

/// The string needs more than [`MAX_ENCODED_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("string needs {len} bytes of modified UTF-8, more than the 65535 allowed")]
pub struct StringTooLong {
    /// Encoded length the string would need.
    pub len: usize,
}

/// Why a length-prefixed string could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadUtfError {
    /// The input ended before the length prefix or before the bytes it announces.
    Truncated,
    /// The announced bytes are there but are not modified UTF-8.
    Malformed(MalformedString),
}

impl fmt::Display for ReadUtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadUtfError::Truncated => f.write_str("string runs past the end of the input"),
            ReadUtfError::Malformed(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadUtfError {}

/// Encoded size of one character.
const fn char_len(c: char) -> usize {
    match c as u32 {
        0 => 2,
        0x01..=0x7F => 1,
        0x80..=0x7FF => 2,
        0x800..=0xFFFF => 3,
        _ => 6,
    }
}

/// Number of bytes `s` takes in modified UTF-8, without the length prefix.
pub fn encoded_len(s: &str) -> usize {
    s.chars().map(char_len).sum()
}

/// Appends one UTF-16 code unit (BMP character or surrogate) in its 1-, 2- or 3-byte form.
fn push_unit(out: &mut Vec<u8>, u: u16) {
    match u {
        0x01..=0x7F => out.push(u as u8),
        0x00 | 0x80..=0x7FF => {
            out.extend_from_slice(&[0xC0 | (u >> 6) as u8, 0x80 | (u & 0x3F) as u8])
        }
        _ => out.extend_from_slice(&[
            0xE0 | (u >> 12) as u8,
            0x80 | ((u >> 6) & 0x3F) as u8,
            0x80 | (u & 0x3F) as u8,
        ]),
    }
}

/// Appends `s` in modified UTF-8 (no length prefix, no length limit).
pub fn encode(s: &str, out: &mut Vec<u8>) {
    out.reserve(encoded_len(s));
    let mut units = [0u16; 2];
    for c in s.chars() {
        for &u in c.encode_utf16(&mut units).iter() {
            push_unit(out, u);
        }
    }
}

/// The longest prefix of `s`, ending at a character boundary, whose encoding fits in
/// [`MAX_ENCODED_LEN`] bytes. Returns `s` itself when it already fits.
pub fn truncate_to_fit(s: &str) -> &str {
    // A character never needs more than twice its UTF-8 size (NUL 1 -> 2, four-byte UTF-8 -> 6),
    // so strings of up to half the limit always fit.
    if s.len() <= MAX_ENCODED_LEN / 2 {
        return s;
    }
    let mut total = 0;
    for (i, c) in s.char_indices() {
        total += char_len(c);
        if total > MAX_ENCODED_LEN {
            return &s[..i];
        }
    }
    s
}

/// Appends the `u16` length prefix and the modified UTF-8 bytes of `s`, like Java's `writeUTF`.
/// Fails, writing nothing, when the encoding needs more than [`MAX_ENCODED_LEN`] bytes.
pub fn write_utf(out: &mut Vec<u8>, s: &str) -> Result<(), StringTooLong> {
    let len = encoded_len(s);
    let prefix = u16::try_from(len).map_err(|_| StringTooLong { len })?;
    out.reserve(2 + len);
    out.extend_from_slice(&prefix.to_be_bytes());
    encode(s, out);
    Ok(())
}

/// Appends the longest prefix of `s` that fits ([`truncate_to_fit`]) with its length prefix.
/// Never fails; returns whether anything was cut off.
pub fn write_utf_truncated(out: &mut Vec<u8>, s: &str) -> bool {
    let fitted = truncate_to_fit(s);
    let len = encoded_len(fitted).min(MAX_ENCODED_LEN);
    out.reserve(2 + len);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    encode(fitted, out);
    fitted.len() < s.len()
}

/// Decodes modified UTF-8 bytes (no length prefix). Unpaired surrogates become U+FFFD.
pub fn decode(bytes: &[u8]) -> Result<String, MalformedString> {
    // Common case: plain ASCII without NUL bytes is the same in both encodings.
    if bytes.iter().all(|&b| (0x01..0x80).contains(&b))
        && let Ok(s) = std::str::from_utf8(bytes)
    {
        return Ok(s.to_owned());
    }

    let mut out = String::with_capacity(bytes.len());
    // A high surrogate waiting for its low half.
    let mut pending_high: Option<u16> = None;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let malformed = MalformedString { offset: start };
        let b0 = bytes[i];
        let unit: u16 = match b0 >> 4 {
            0x0..=0x7 => {
                i += 1;
                u16::from(b0)
            }
            0xC | 0xD => {
                let b1 = *bytes.get(i + 1).ok_or(malformed)?;
                if b1 & 0xC0 != 0x80 {
                    return Err(malformed);
                }
                i += 2;
                (u16::from(b0 & 0x1F) << 6) | u16::from(b1 & 0x3F)
            }
            0xE => {
                let (b1, b2) = match bytes.get(i + 1..i + 3) {
                    Some(&[b1, b2]) => (b1, b2),
                    _ => return Err(malformed),
                };
                if b1 & 0xC0 != 0x80 || b2 & 0xC0 != 0x80 {
                    return Err(malformed);
                }
                i += 3;
                (u16::from(b0 & 0x0F) << 12) | (u16::from(b1 & 0x3F) << 6) | u16::from(b2 & 0x3F)
            }
            // 10xxxxxx (a continuation byte without a lead) or 1111xxxx.
            _ => return Err(malformed),
        };

        match unit {
            0xD800..=0xDBFF => {
                if pending_high.replace(unit).is_some() {
                    out.push(char::REPLACEMENT_CHARACTER);
                }
            }
            0xDC00..=0xDFFF => match pending_high.take() {
                Some(high) => {
                    let c =
                        0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                    out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                None => out.push(char::REPLACEMENT_CHARACTER),
            },
            _ => {
                if pending_high.take().is_some() {
                    out.push(char::REPLACEMENT_CHARACTER);
                }
                // Not a surrogate, so always a valid scalar value.
                out.push(char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
        }
    }
    if pending_high.is_some() {
        out.push(char::REPLACEMENT_CHARACTER);
    }
    Ok(out)
}

/// Reads one length-prefixed string from the front of `input` and advances past it, like Java's
/// `readUTF`. On error `input` is left unchanged.
pub fn read_utf(input: &mut &[u8]) -> Result<String, ReadUtfError> {
    let (len, rest) = match input.split_first_chunk::<2>() {
        Some((len, rest)) => (usize::from(u16::from_be_bytes(*len)), rest),
        None => return Err(ReadUtfError::Truncated),
    };
    let Some((bytes, rest)) = rest.split_at_checked(len) else {
        return Err(ReadUtfError::Truncated);
    };
    let s = decode(bytes).map_err(ReadUtfError::Malformed)?;
    *input = rest;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        write_utf(&mut v, s).unwrap();
        v
    }

    #[test]
    fn spec_example_emoji_and_nul() {
        assert_eq!(
            enc("a😀\0"),
            [
                0x00, 0x09, 0x61, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80, 0xC0, 0x80
            ]
        );
        let bytes = enc("a😀\0");
        let mut input = &bytes[..];
        assert_eq!(read_utf(&mut input).unwrap(), "a😀\0");
        assert!(input.is_empty());
    }

    #[test]
    fn each_width_matches_java() {
        assert_eq!(enc(""), [0, 0]);
        assert_eq!(enc("A"), [0, 1, 0x41]);
        assert_eq!(enc("é"), [0, 2, 0xC3, 0xA9]); // U+00E9
        assert_eq!(enc("\u{7FF}"), [0, 2, 0xDF, 0xBF]);
        assert_eq!(enc("€"), [0, 3, 0xE2, 0x82, 0xAC]); // U+20AC
        assert_eq!(enc("\u{FFFF}"), [0, 3, 0xEF, 0xBF, 0xBF]);
        // U+10FFFF = DBFF DFFF
        assert_eq!(
            enc("\u{10FFFF}"),
            [0, 6, 0xED, 0xAF, 0xBF, 0xED, 0xBF, 0xBF]
        );
        assert_eq!(encoded_len("a😀\0é€"), 1 + 6 + 2 + 2 + 3);
    }

    #[test]
    fn java_leniencies_are_kept() {
        // A raw zero byte and over-long forms are accepted by readUTF.
        assert_eq!(decode(&[0x61, 0x00, 0x62]).unwrap(), "a\0b");
        assert_eq!(decode(&[0xC1, 0x81]).unwrap(), "A");
        assert_eq!(decode(&[0xE0, 0x80, 0x80]).unwrap(), "\0");
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        // High surrogate alone, at the end.
        assert_eq!(decode(&[0x61, 0xED, 0xA0, 0xBD]).unwrap(), "a\u{FFFD}");
        // Low surrogate alone.
        assert_eq!(decode(&[0xED, 0xB8, 0x80, 0x62]).unwrap(), "\u{FFFD}b");
        // Two highs then a low: the first high is lone, the second pairs.
        assert_eq!(
            decode(&[0xED, 0xA0, 0xBD, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]).unwrap(),
            "\u{FFFD}😀"
        );
        // High followed by a normal character.
        assert_eq!(decode(&[0xED, 0xA0, 0xBD, 0x41]).unwrap(), "\u{FFFD}A");
    }

    #[test]
    fn invalid_sequences_are_rejected() {
        // Stray continuation byte.
        assert_eq!(decode(&[0x41, 0x80]), Err(MalformedString { offset: 1 }));
        // Standard UTF-8 four-byte form (what a non-Java encoder would write for 😀).
        assert_eq!(
            decode(&[0xF0, 0x9F, 0x98, 0x80]),
            Err(MalformedString { offset: 0 })
        );
        // Bad continuation in 2- and 3-byte forms.
        assert!(decode(&[0xC3, 0x41]).is_err());
        assert!(decode(&[0xE2, 0x82, 0x41]).is_err());
        // Cut off by the end of the string.
        assert!(decode(&[0xC3]).is_err());
        assert!(decode(&[0xE2, 0x82]).is_err());
        assert!(decode(&[0xFF]).is_err());
    }

    #[test]
    fn read_utf_reports_truncation_and_leaves_input_alone() {
        let mut input: &[u8] = &[0x00];
        assert_eq!(read_utf(&mut input), Err(ReadUtfError::Truncated));
        let mut input: &[u8] = &[0x00, 0x03, b'a', b'b'];
        assert_eq!(read_utf(&mut input), Err(ReadUtfError::Truncated));
        assert_eq!(input.len(), 4);
        let mut input: &[u8] = &[0x00, 0x01, 0x80, b'x'];
        assert_eq!(
            read_utf(&mut input),
            Err(ReadUtfError::Malformed(MalformedString { offset: 0 }))
        );
        assert_eq!(input.len(), 4);
    }

    #[test]
    fn too_long_is_refused_and_truncation_keeps_characters_whole() {
        let ascii = "x".repeat(MAX_ENCODED_LEN);
        assert!(write_utf(&mut Vec::new(), &ascii).is_ok());
        assert_eq!(truncate_to_fit(&ascii), ascii);

        let over = "x".repeat(MAX_ENCODED_LEN + 1);
        let mut out = vec![1, 2];
        assert_eq!(
            write_utf(&mut out, &over),
            Err(StringTooLong {
                len: MAX_ENCODED_LEN + 1
            })
        );
        assert_eq!(out, [1, 2], "nothing written on failure");
        assert_eq!(truncate_to_fit(&over).len(), MAX_ENCODED_LEN);
        let mut out = Vec::new();
        assert!(write_utf_truncated(&mut out, &over));
        assert_eq!(out[..2], [0xFF, 0xFF]);
        assert_eq!(out.len(), 2 + MAX_ENCODED_LEN);
        let mut out = Vec::new();
        assert!(!write_utf_truncated(&mut out, "a😀"));
        assert_eq!(out, enc("a😀"));

        // 65534 ASCII bytes + an emoji (6 bytes) does not fit; the emoji is dropped whole.
        let s = format!("{}😀", "x".repeat(MAX_ENCODED_LEN - 1));
        let cut = truncate_to_fit(&s);
        assert_eq!(cut, "x".repeat(MAX_ENCODED_LEN - 1));
        assert!(write_utf(&mut Vec::new(), cut).is_ok());

        // NULs take two bytes each.
        let nuls = "\0".repeat(40_000);
        assert_eq!(truncate_to_fit(&nuls).len(), MAX_ENCODED_LEN / 2);
    }

    proptest! {
        #[test]
        fn round_trip(s in any::<String>()) {
            let mut bytes = Vec::new();
            encode(&s, &mut bytes);
            prop_assert_eq!(bytes.len(), encoded_len(&s));
            prop_assert!(!bytes.contains(&0), "modified UTF-8 never contains a zero byte");
            prop_assert_eq!(decode(&bytes).unwrap(), s);
        }

        #[test]
        fn agrees_with_utf8_on_bmp_text_without_nul(s in "[^\u{0}\u{10000}-\u{10FFFF}]*") {
            let mut bytes = Vec::new();
            encode(&s, &mut bytes);
            prop_assert_eq!(bytes, s.as_bytes());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
