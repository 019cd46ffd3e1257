//! lavaplayer's binary track format, the `encoded` string of every Lavalink track: decode
//! versions 1–3 (and later ones with the version-3 layout), encode version 3.
//!
//! An encoded track is the base64 (standard alphabet, `=` padding) of one *message*:
//!
//! ```text
//! u32 BE header     bits 31..30 = flags, bits 29..0 = body size in bytes
//! body[size]        [version u8, if flags & 1]
//!                   title UTF, author UTF, length i64, identifier UTF, isStream u8,
//!                   uri OptUTF (version >= 2), artworkUrl OptUTF, isrc OptUTF (version >= 3),
//!                   sourceName UTF, source-specific details, position i64
//! ```
//!
//! All integers are big-endian. *UTF* is a `u16` byte count and Java modified UTF-8
//! ([`super::modified_utf8`]); *OptUTF* is a presence byte (0 = null) followed by a UTF when
//! present. Without the versioned flag the message is version 1 (no version byte, no uri).
//! `isSeekable` is not stored: decoding sets it to `!isStream`.
//!
//! Decoding follows lavaplayer: fields are read by "version at least n", so versions above 3 use
//! the version-3 layout; exactly `size` bytes form the body and whatever the fields leave unread
//! in it is ignored (room for additions); bytes after the body are ignored too. A body that ends
//! before its fields do, a string that is not modified UTF-8, or a source whose details we cannot
//! read is an error, never a panic.

use std::convert::Infallible;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::modified_utf8::{self, MalformedString, ReadUtfError};
use super::track::TrackInfo;

/// How a source lays out its source-specific detail bytes (field 10 of the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailsLayout {
    /// No detail bytes (youtube, soundcloud, bandcamp, twitch, vimeo, niconico).
    Empty,
    /// One modified-UTF-8 string: the probe info of `http`/`local` tracks.
    ProbeInfo,
}

/// Source-specific details as stored in the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDetails {
    None,
    /// e.g. `mp3`, or `m3u|hls-outer`.
    ProbeInfo(String),
}

/// A decoded blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedTrack {
    /// `is_seekable` is computed as `!is_stream`; `position` is the stored position.
    pub info: TrackInfo,
    pub details: SourceDetails,
    /// The message version that was read: 1 for a message without the versioned flag, otherwise
    /// the version byte (2, 3, or a later version that was read with the version-3 layout).
    pub version: u8,
}

/// Why a blob could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackDecodeError {
    #[error("invalid base64")]
    Base64,
    #[error("truncated track data")]
    Truncated,
    #[error("invalid modified UTF-8 string")]
    InvalidString,
    #[error("unknown source {0}")]
    UnknownSource(String),
    /// Longer than [`MAX_BASE64_LEN`] characters (or [`MAX_MESSAGE_LEN`] bytes): larger than any
    /// track this codec can produce, refused before decoding.
    #[error("encoded track is too large")]
    TooLarge,
}

/// Why [`try_encode_track`] refused a track.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackEncodeError {
    /// A text field needs more than 65535 bytes of modified UTF-8.
    #[error("{field} needs {len} bytes of modified UTF-8, more than the 65535 a track can store")]
    StringTooLong { field: &'static str, len: usize },
}

/// The version [`encode_track`] writes.
pub const ENCODE_VERSION: u8 = 3;

/// Header flag: the body starts with a version byte.
const FLAG_VERSIONED: u32 = 1;
/// Header bits holding the body size.
const SIZE_MASK: u32 = 0x3FFF_FFFF;

/// The largest message [`encode_track`] can produce: header, version byte, eight strings
/// (title, author, identifier, uri, artworkUrl, isrc, sourceName, probe info) at the 65535-byte
/// maximum, three presence bytes, length, isStream and position.
pub const MAX_MESSAGE_LEN: usize = 4 + 1 + 8 * (2 + modified_utf8::MAX_ENCODED_LEN) + 3 + 8 + 1 + 8;

/// The longest encoded string [`decode_track`] accepts: the base64 length of
/// [`MAX_MESSAGE_LEN`] (about 683 KiB), so every track we encode decodes again and anything
/// larger is refused without decoding it.
pub const MAX_BASE64_LEN: usize = MAX_MESSAGE_LEN.div_ceil(3) * 4;

/// Standard alphabet; writes padding; reads with or without it. Like Java's decoder it does not
/// insist that the unused low bits of the last character are zero.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes a base64 track. `layout` tells, for a `sourceName`, how its details are laid out;
/// `None` means the source is unknown (decoding fails).
pub fn decode_track(
    encoded: &str,
    layout: impl Fn(&str) -> Option<DetailsLayout>,
) -> Result<DecodedTrack, TrackDecodeError> {
    if encoded.len() > MAX_BASE64_LEN {
        return Err(TrackDecodeError::TooLarge);
    }
    let bytes = BASE64
        .decode(encoded)
        .map_err(|_| TrackDecodeError::Base64)?;
    decode_message(&bytes, layout)
}

/// Decodes one message (the bytes under the base64). Bytes after the message are ignored.
pub fn decode_message(
    bytes: &[u8],
    layout: impl Fn(&str) -> Option<DetailsLayout>,
) -> Result<DecodedTrack, TrackDecodeError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(TrackDecodeError::TooLarge);
    }
    let (header, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or(TrackDecodeError::Truncated)?;
    let header = u32::from_be_bytes(*header);
    let flags = header >> 30;
    let size = (header & SIZE_MASK) as usize;
    let body = rest.get(..size).ok_or(TrackDecodeError::Truncated)?;

    let mut r = Reader { rest: body };
    let version = if flags & FLAG_VERSIONED != 0 {
        r.u8()?
    } else {
        1
    };
    let title = r.utf()?;
    let author = r.utf()?;
    let length = r.i64()?;
    let identifier = r.utf()?;
    let is_stream = r.bool()?;
    let uri = if version >= 2 { r.opt_utf()? } else { None };
    let (artwork_url, isrc) = if version >= 3 {
        (r.opt_utf()?, r.opt_utf()?)
    } else {
        (None, None)
    };
    let source_name = r.utf()?;
    let details = match layout(&source_name) {
        None => return Err(TrackDecodeError::UnknownSource(source_name)),
        Some(DetailsLayout::Empty) => SourceDetails::None,
        Some(DetailsLayout::ProbeInfo) => SourceDetails::ProbeInfo(r.utf()?),
    };
    let position = r.i64()?;
    // Anything still unread in the body belongs to a later format version: ignored.

    Ok(DecodedTrack {
        info: TrackInfo {
            identifier,
            is_seekable: !is_stream,
            author,
            length,
            is_stream,
            position,
            title,
            uri,
            artwork_url,
            isrc,
            source_name,
        },
        details,
        version,
    })
}

/// Encodes a track as a version-3 message (flags = 1), base64 with padding.
///
/// `info.is_seekable` is not stored. A text field longer than 65535 bytes of modified UTF-8 is
/// cut at the last character that fits (no real track has one); use [`try_encode_track`] to get
/// an error instead.
pub fn encode_track(info: &TrackInfo, details: &SourceDetails) -> String {
    BASE64.encode(encode_message(info, details))
}

/// Like [`encode_track`], but refuses a track with a text field too long to store instead of
/// truncating it.
pub fn try_encode_track(
    info: &TrackInfo,
    details: &SourceDetails,
) -> Result<String, TrackEncodeError> {
    encode_message_with::<Strict>(info, details).map(|m| BASE64.encode(m))
}

/// The message bytes under [`encode_track`]'s base64 (over-long strings truncated likewise).
pub fn encode_message(info: &TrackInfo, details: &SourceDetails) -> Vec<u8> {
    let Ok(message) = encode_message_with::<Truncate>(info, details);
    message
}

/// What to do with a string too long for its `u16` prefix.
trait LongStrings {
    type Error;
    fn put(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), Self::Error>;
}

/// Refuse the track.
struct Strict;

impl LongStrings for Strict {
    type Error = TrackEncodeError;
    fn put(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), TrackEncodeError> {
        modified_utf8::write_utf(out, s)
            .map_err(|e| TrackEncodeError::StringTooLong { field, len: e.len })
    }
}

/// Keep the longest prefix that fits.
struct Truncate;

impl LongStrings for Truncate {
    type Error = Infallible;
    fn put(out: &mut Vec<u8>, _field: &'static str, s: &str) -> Result<(), Infallible> {
        modified_utf8::write_utf_truncated(out, s);
        Ok(())
    }
}

fn encode_message_with<P: LongStrings>(
    info: &TrackInfo,
    details: &SourceDetails,
) -> Result<Vec<u8>, P::Error> {
    fn opt<P: LongStrings>(
        out: &mut Vec<u8>,
        field: &'static str,
        s: Option<&str>,
    ) -> Result<(), P::Error> {
        match s {
            None => {
                out.push(0);
                Ok(())
            }
            Some(s) => {
                out.push(1);
                P::put(out, field, s)
            }
        }
    }

    let mut out = Vec::with_capacity(
        64 + info.title.len()
            + info.author.len()
            + info.identifier.len()
            + info.uri.as_deref().map_or(0, str::len)
            + info.artwork_url.as_deref().map_or(0, str::len)
            + info.isrc.as_deref().map_or(0, str::len)
            + info.source_name.len(),
    );
    out.extend_from_slice(&[0; 4]); // header, filled in below
    out.push(ENCODE_VERSION);
    P::put(&mut out, "title", &info.title)?;
    P::put(&mut out, "author", &info.author)?;
    out.extend_from_slice(&info.length.to_be_bytes());
    P::put(&mut out, "identifier", &info.identifier)?;
    out.push(u8::from(info.is_stream));
    opt::<P>(&mut out, "uri", info.uri.as_deref())?;
    opt::<P>(&mut out, "artworkUrl", info.artwork_url.as_deref())?;
    opt::<P>(&mut out, "isrc", info.isrc.as_deref())?;
    P::put(&mut out, "sourceName", &info.source_name)?;
    match details {
        SourceDetails::None => {}
        SourceDetails::ProbeInfo(probe) => P::put(&mut out, "probeInfo", probe)?,
    }
    out.extend_from_slice(&info.position.to_be_bytes());

    // At most MAX_MESSAGE_LEN - 4 bytes (eight strings of at most 65537 bytes each plus fixed
    // fields), far below the 30-bit size field's limit.
    let body_len = (out.len() - 4) as u32 & SIZE_MASK;
    let header = (FLAG_VERSIONED << 30) | body_len;
    out[..4].copy_from_slice(&header.to_be_bytes());
    Ok(out)
}

/// Reads big-endian fields from the front of a body.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], TrackDecodeError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(TrackDecodeError::Truncated)?;
        self.rest = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, TrackDecodeError> {
        self.array::<1>().map(|[b]| b)
    }

    /// Java's `readBoolean`: any non-zero byte is true.
    fn bool(&mut self) -> Result<bool, TrackDecodeError> {
        self.u8().map(|b| b != 0)
    }

    fn i64(&mut self) -> Result<i64, TrackDecodeError> {
        self.array::<8>().map(i64::from_be_bytes)
    }

    fn utf(&mut self) -> Result<String, TrackDecodeError> {
        modified_utf8::read_utf(&mut self.rest).map_err(|e| match e {
            ReadUtfError::Truncated => TrackDecodeError::Truncated,
            ReadUtfError::Malformed(MalformedString { .. }) => TrackDecodeError::InvalidString,
        })
    }

    fn opt_utf(&mut self) -> Result<Option<String>, TrackDecodeError> {
        if self.bool()? {
            self.utf().map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::track::UNKNOWN_LENGTH;
    use proptest::prelude::*;

    /// The source layouts lavaplayer's built-in sources use.
    fn builtin(source: &str) -> Option<DetailsLayout> {
        match source {
            "youtube" | "soundcloud" | "bandcamp" | "twitch" | "vimeo" | "niconico" => {
                Some(DetailsLayout::Empty)
            }
            "http" | "local" => Some(DetailsLayout::ProbeInfo),
            _ => None,
        }
    }

    fn bytes_of(encoded: &str) -> Vec<u8> {
        BASE64.decode(encoded).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        BASE64.encode(bytes)
    }

    /// A body writer for hand-built test blobs (independent of the encoder under test).
    #[derive(Default)]
    struct Body(Vec<u8>);

    impl Body {
        fn u8(mut self, b: u8) -> Self {
            self.0.push(b);
            self
        }
        fn i64(mut self, v: i64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        /// ASCII only: plain bytes are modified UTF-8 there.
        fn utf(mut self, s: &str) -> Self {
            assert!(s.is_ascii() && !s.contains('\0'));
            self.0.extend_from_slice(&(s.len() as u16).to_be_bytes());
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        fn message(self, flags: u32) -> Vec<u8> {
            let mut m = ((flags << 30) | self.0.len() as u32).to_be_bytes().to_vec();
            m.extend_from_slice(&self.0);
            m
        }
    }

    fn info(
        title: &str,
        author: &str,
        length: i64,
        identifier: &str,
        is_stream: bool,
        uri: Option<&str>,
        source: &str,
    ) -> TrackInfo {
        TrackInfo {
            identifier: identifier.into(),
            is_seekable: !is_stream,
            author: author.into(),
            length,
            is_stream,
            position: 0,
            title: title.into(),
            uri: uri.map(Into::into),
            artwork_url: None,
            isrc: None,
            source_name: source.into(),
        }
    }

    const SPEC_V2: &str = "QAAAjQIAJVJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAADlJpY2tBc3RsZXlWRVZPAAAAAAADPCAAC2RRdzR3OVdnWGNRAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9ZFF3NHc5V2dYY1EAB3lvdXR1YmUAAAAAAAAAAA==";
    const SPEC_V3: &str = "QAAA2QMAPFJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAgKE9mZmljaWFsIE11c2ljIFZpZGVvKQALUmljayBBc3RsZXkAAAAAAANACAALZFF3NHc5V2dYY1EAAQAraHR0cHM6Ly93d3cueW91dHViZS5jb20vd2F0Y2g/dj1kUXc0dzlXZ1hjUQEANGh0dHBzOi8vaS55dGltZy5jb20vdmkvZFF3NHc5V2dYY1EvbWF4cmVzZGVmYXVsdC5qcGcAAAd5b3V0dWJlAAAAAAAAAAA=";
    const SPEC_HTTP: &str = "QAAAewMADVVua25vd24gdGl0bGUADlVua25vd24gYXJ0aXN0AAAAAAACvyAAHGh0dHBzOi8vZXhhbXBsZS5jb20vc29uZy5tcDMAAQAcaHR0cHM6Ly9leGFtcGxlLmNvbS9zb25nLm1wMwAAAARodHRwAANtcDMAAAAAAAAAAA==";

    #[test]
    fn spec_example_v2_decodes() {
        let d = decode_track(SPEC_V2, builtin).unwrap();
        assert_eq!(d.version, 2);
        assert_eq!(d.details, SourceDetails::None);
        assert_eq!(
            d.info,
            info(
                "Rick Astley - Never Gonna Give You Up",
                "RickAstleyVEVO",
                212_000,
                "dQw4w9WgXcQ",
                false,
                Some("https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
                "youtube",
            )
        );
        assert_eq!(bytes_of(SPEC_V2).len(), 145);
        // We always write version 3, which then reads back as the same track.
        let again = encode_track(&d.info, &d.details);
        assert!(again.starts_with("QAAA"));
        let d3 = decode_track(&again, builtin).unwrap();
        assert_eq!((d3.version, d3.info), (3, d.info));
    }

    #[test]
    fn spec_example_v3_decodes_and_reencodes_identically() {
        let d = decode_track(SPEC_V3, builtin).unwrap();
        assert_eq!(d.version, 3);
        let mut expected = info(
            "Rick Astley - Never Gonna Give You Up (Official Music Video)",
            "Rick Astley",
            213_000,
            "dQw4w9WgXcQ",
            false,
            Some("https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
            "youtube",
        );
        expected.artwork_url = Some("https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg".into());
        assert_eq!(d.info, expected);
        assert_eq!(bytes_of(SPEC_V3).len(), 221);
        assert_eq!(encode_track(&d.info, &d.details), SPEC_V3);
        assert_eq!(try_encode_track(&d.info, &d.details).unwrap(), SPEC_V3);
    }

    #[test]
    fn spec_example_http_with_probe_info() {
        let url = "https://example.com/song.mp3";
        let d = decode_track(SPEC_HTTP, builtin).unwrap();
        assert_eq!(d.version, 3);
        assert_eq!(d.details, SourceDetails::ProbeInfo("mp3".into()));
        assert_eq!(
            d.info,
            info(
                "Unknown title",
                "Unknown artist",
                180_000,
                url,
                false,
                Some(url),
                "http"
            )
        );
        assert_eq!(bytes_of(SPEC_HTTP).len(), 127);
        assert_eq!(encode_track(&d.info, &d.details), SPEC_HTTP);
    }

    #[test]
    fn unknown_source_fails() {
        assert_eq!(
            decode_track(SPEC_HTTP, |_| None),
            Err(TrackDecodeError::UnknownSource("http".into()))
        );
        // The layout decides how many detail bytes there are: read as "no details", the probe
        // string's length prefix is taken for the position and the position is left over.
        let d = decode_track(SPEC_HTTP, |_| Some(DetailsLayout::Empty)).unwrap();
        assert_eq!(d.details, SourceDetails::None);
        assert_eq!(d.info.position, 0x0003_6D70_3300_0000);
    }

    #[test]
    fn spec_nul_and_emoji_bytes_in_a_title() {
        let mut t = info("a😀\0", "x", 1, "id", false, None, "youtube");
        t.position = 5;
        let encoded = encode_track(&t, &SourceDetails::None);
        let bytes = bytes_of(&encoded);
        // header, version, then the title exactly as Java writes it.
        assert_eq!(
            &bytes[5..16],
            [
                0x00, 0x09, 0x61, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80, 0xC0, 0x80
            ]
        );
        assert_eq!(decode_track(&encoded, builtin).unwrap().info, t);
    }

    #[test]
    fn emoji_titles_round_trip() {
        for title in [
            "🎵 Lo-fi 🌧️ beats",
            "日本語のタイトル",
            "👨‍👩‍👧‍👦",
            "mixed é € 𝄞 \u{FFFF}",
        ] {
            let t = info(
                title,
                "🎤 Singer",
                1000,
                "x",
                false,
                Some("🔗"),
                "soundcloud",
            );
            let d = decode_track(&encode_track(&t, &SourceDetails::None), builtin).unwrap();
            assert_eq!(d.info, t, "{title}");
        }
    }

    #[test]
    fn version_1_blob_without_flag() {
        let body = Body::default()
            .utf("Old title")
            .utf("Old author")
            .i64(61_000)
            .utf("abc")
            .u8(0)
            .utf("youtube")
            .i64(0);
        let blob = b64(&body.message(0));
        assert!(blob.starts_with("AAAA"), "flags = 0");
        let d = decode_track(&blob, builtin).unwrap();
        assert_eq!(d.version, 1);
        assert_eq!(
            d.info,
            info(
                "Old title",
                "Old author",
                61_000,
                "abc",
                false,
                None,
                "youtube"
            )
        );
    }

    #[test]
    fn version_2_blob_with_uri_and_stream() {
        let body = Body::default()
            .u8(2)
            .utf("Radio")
            .utf("Station")
            .i64(UNKNOWN_LENGTH)
            .utf("http://radio.example/live")
            .u8(1)
            .u8(1)
            .utf("http://radio.example/live")
            .utf("http")
            .utf("mp3")
            .i64(0);
        let d = decode_track(&b64(&body.message(1)), builtin).unwrap();
        assert_eq!(d.version, 2);
        assert_eq!(d.details, SourceDetails::ProbeInfo("mp3".into()));
        assert!(d.info.is_stream);
        assert!(!d.info.is_seekable, "isSeekable = !isStream");
        assert_eq!(d.info.length, UNKNOWN_LENGTH);
        assert_eq!(d.info.uri.as_deref(), Some("http://radio.example/live"));
        assert_eq!((d.info.artwork_url, d.info.isrc), (None, None));
    }

    #[test]
    fn stored_position_is_returned() {
        let mut t = info("T", "A", 200_000, "id", false, None, "youtube");
        t.position = 30_000;
        let encoded = encode_track(&t, &SourceDetails::None);
        let bytes = bytes_of(&encoded);
        assert_eq!(&bytes[bytes.len() - 8..], 30_000i64.to_be_bytes());
        assert_eq!(
            decode_track(&encoded, builtin).unwrap().info.position,
            30_000
        );
    }

    #[test]
    fn later_versions_use_v3_layout_and_extra_body_bytes_are_ignored() {
        let body = Body::default()
            .u8(4)
            .utf("T")
            .utf("A")
            .i64(1)
            .utf("id")
            .u8(0)
            .u8(0)
            .u8(1)
            .utf("art")
            .u8(1)
            .utf("ISRC1")
            .utf("youtube")
            .i64(42)
            .raw(b"future fields");
        let d = decode_track(&b64(&body.message(1)), builtin).unwrap();
        assert_eq!(d.version, 4);
        assert_eq!(d.info.artwork_url.as_deref(), Some("art"));
        assert_eq!(d.info.isrc.as_deref(), Some("ISRC1"));
        assert_eq!(d.info.position, 42);
    }

    #[test]
    fn bytes_after_the_message_are_ignored() {
        let mut bytes = bytes_of(SPEC_V3);
        bytes.extend_from_slice(b"trailing");
        let d = decode_track(&b64(&bytes), builtin).unwrap();
        assert_eq!(d, decode_track(SPEC_V3, builtin).unwrap());
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        for example in [SPEC_V2, SPEC_V3, SPEC_HTTP] {
            let bytes = bytes_of(example);
            for cut in 0..bytes.len() {
                assert_eq!(
                    decode_message(&bytes[..cut], builtin),
                    Err(TrackDecodeError::Truncated),
                    "{example} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn declared_size_too_small_or_too_large() {
        let mut bytes = bytes_of(SPEC_V3);
        // Body declared 8 bytes short: the position is outside the body.
        bytes[3] -= 8;
        assert_eq!(
            decode_message(&bytes, builtin),
            Err(TrackDecodeError::Truncated)
        );
        // Body declared at the 30-bit maximum with only 217 bytes present.
        bytes[..4].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        assert_eq!(
            decode_message(&bytes, builtin),
            Err(TrackDecodeError::Truncated)
        );
    }

    #[test]
    fn base64_padding_optional_garbage_rejected() {
        let unpadded = SPEC_V2.trim_end_matches('=');
        assert_ne!(unpadded, SPEC_V2);
        assert_eq!(
            decode_track(unpadded, builtin),
            decode_track(SPEC_V2, builtin)
        );
        for bad in [
            "!!!!",
            "QAAA jQ==",
            "QAAA\njQ==",
            "QA=A",
            "Q",
            "QAAA-_",
            "\u{e9}\u{e9}",
        ] {
            assert_eq!(
                decode_track(bad, builtin),
                Err(TrackDecodeError::Base64),
                "{bad:?}"
            );
        }
        assert_eq!(decode_track("", builtin), Err(TrackDecodeError::Truncated));
    }

    #[test]
    fn oversized_input_is_refused() {
        let huge = "A".repeat(MAX_BASE64_LEN + 1);
        assert_eq!(
            decode_track(&huge, builtin),
            Err(TrackDecodeError::TooLarge)
        );
        let huge = vec![0u8; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            decode_message(&huge, builtin),
            Err(TrackDecodeError::TooLarge)
        );
    }

    #[test]
    fn invalid_string_in_body() {
        let body = Body::default()
            .u8(3)
            .raw(&[0x00, 0x02, 0x41, 0x80]) // stray continuation byte
            .utf("A");
        assert_eq!(
            decode_track(&b64(&body.message(1)), builtin),
            Err(TrackDecodeError::InvalidString)
        );
    }

    #[test]
    fn largest_track_round_trips_and_overlong_fields_truncate_or_fail() {
        let max = "😀".repeat(modified_utf8::MAX_ENCODED_LEN / 6) + "xxx";
        assert_eq!(
            modified_utf8::encoded_len(&max),
            modified_utf8::MAX_ENCODED_LEN
        );
        let mut t = info(&max, &max, 1, &max, false, Some(&max), &max);
        t.artwork_url = Some(max.clone());
        t.isrc = Some(max.clone());
        let details = SourceDetails::ProbeInfo(max.clone());
        let message = encode_message(&t, &details);
        assert_eq!(message.len(), MAX_MESSAGE_LEN);
        let encoded = encode_track(&t, &details);
        assert_eq!(encoded.len(), MAX_BASE64_LEN);
        let d = decode_track(&encoded, |_| Some(DetailsLayout::ProbeInfo)).unwrap();
        assert_eq!((d.info, d.details), (t.clone(), details));

        // One byte more in the author.
        t.author.push('x');
        assert_eq!(
            try_encode_track(&t, &SourceDetails::None),
            Err(TrackEncodeError::StringTooLong {
                field: "author",
                len: modified_utf8::MAX_ENCODED_LEN + 1
            })
        );
        let d = decode_track(&encode_track(&t, &SourceDetails::None), |_| {
            Some(DetailsLayout::Empty)
        })
        .unwrap();
        assert_eq!(d.info.author, max, "the extra character is cut off");
        assert_eq!(d.info.title, max);
    }

    // ---- Tracks produced by real Lavalink servers, as found in client libraries' test suites.

    /// Lavalink4NET, `tests/Lavalink4NET.Abstractions.Tests/LavalinkTrackTests.cs`
    /// (`TestKnownTrackWithSpecialCharacters`): a v4 server's track JSON whose title ends in 🌿,
    /// stored as the surrogate pair `ED A0 BC ED BC BF`.
    #[test]
    fn real_lavalink4net_track_with_emoji() {
        let encoded = "QAAA2gMAN0NvenkgYW5pbWFsIGNyb3NzaW5nIG11c2ljIHRoYXQgY3VyZSBteSBoZWFkYWNoZXPtoLztvL8AC1RlbmRvIEZhcm1zAAAAAAA/26gACzhUYkx1Qk9DbFNnAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9OFRiTHVCT0NsU2cBADpodHRwczovL2kueXRpbWcuY29tL3ZpX3dlYnAvOFRiTHVCT0NsU2cvbWF4cmVzZGVmYXVsdC53ZWJwAAAHeW91dHViZQAAAAAAAAAA";
        let d = decode_track(encoded, builtin).unwrap();
        let mut expected = info(
            "Cozy animal crossing music that cure my headaches🌿",
            "Tendo Farms",
            4_185_000,
            "8TbLuBOClSg",
            false,
            Some("https://www.youtube.com/watch?v=8TbLuBOClSg"),
            "youtube",
        );
        expected.artwork_url =
            Some("https://i.ytimg.com/vi_webp/8TbLuBOClSg/maxresdefault.webp".into());
        assert_eq!(d.info, expected);
        assert_eq!(encode_track(&d.info, &d.details), encoded);
    }

    /// Lavalink4NET, `tests/Lavalink4NET.Abstractions.Tests/LavalinkTrackTests.cs`: the same
    /// track as the test above, but written by a client-side encoder with *standard* UTF-8 for 🌿
    /// (`F0 9F 8C BF`). Java's `readUTF` rejects the four-byte form, and so do we.
    #[test]
    fn standard_utf8_four_byte_form_is_rejected_like_the_reference() {
        let encoded = "QAAA2AMANUNvenkgYW5pbWFsIGNyb3NzaW5nIG11c2ljIHRoYXQgY3VyZSBteSBoZWFkYWNoZXPwn4y/AAtUZW5kbyBGYXJtcwAAAAAAP9uoAAs4VGJMdUJPQ2xTZwABACtodHRwczovL3d3dy55b3V0dWJlLmNvbS93YXRjaD92PThUYkx1Qk9DbFNnAQA6aHR0cHM6Ly9pLnl0aW1nLmNvbS92aV93ZWJwLzhUYkx1Qk9DbFNnL21heHJlc2RlZmF1bHQud2VicAAAB3lvdXR1YmUAAAAAAAKYtw==";
        assert_eq!(
            decode_track(encoded, builtin),
            Err(TrackDecodeError::InvalidString)
        );
    }

    /// Lavalink4NET, `tests/Lavalink4NET.Rest.Tests/LavalinkApiClientTests.cs`
    /// (`TestLoadTrackAsync`): a `/v4/loadtracks` response.
    #[test]
    fn real_lavalink4net_loadtracks_response() {
        let encoded = "QAAA3wMAPFJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAgKE9mZmljaWFsIE11c2ljIFZpZGVvKQALUmljayBBc3RsZXkAAAAAAAM8IAALZFF3NHc5V2dYY1EAAQAraHR0cHM6Ly93d3cueW91dHViZS5jb20vd2F0Y2g/dj1kUXc0dzlXZ1hjUQEAOmh0dHBzOi8vaS55dGltZy5jb20vdmlfd2VicC9kUXc0dzlXZ1hjUS9tYXhyZXNkZWZhdWx0LndlYnAAAAd5b3V0dWJlAAAAAAAAAAA=";
        let d = decode_track(encoded, builtin).unwrap();
        let mut expected = info(
            "Rick Astley - Never Gonna Give You Up (Official Music Video)",
            "Rick Astley",
            212_000,
            "dQw4w9WgXcQ",
            false,
            Some("https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
            "youtube",
        );
        expected.artwork_url =
            Some("https://i.ytimg.com/vi_webp/dQw4w9WgXcQ/maxresdefault.webp".into());
        assert_eq!(d.info, expected);
        assert_eq!(encode_track(&d.info, &d.details), encoded);
    }

    /// twilight-rs/twilight, `twilight-lavalink/src/model.rs`: a `TrackStartEvent` payload.
    #[test]
    fn real_twilight_track_start_event() {
        let encoded = "QAAAzgMAMUJsZWVkIEl0IE91dCBbT2ZmaWNpYWwgTXVzaWMgVmlkZW9dIC0gTGlua2luIFBhcmsAC0xpbmtpbiBQYXJrAAAAAAAClCgAC09udXVZY3FoekNFAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9T251dVljcWh6Q0UBADRodHRwczovL2kueXRpbWcuY29tL3ZpL09udXVZY3FoekNFL21heHJlc2RlZmF1bHQuanBnAAAHeW91dHViZQAAAAAAAAAA";
        let d = decode_track(encoded, builtin).unwrap();
        let mut expected = info(
            "Bleed It Out [Official Music Video] - Linkin Park",
            "Linkin Park",
            169_000,
            "OnuuYcqhzCE",
            false,
            Some("https://www.youtube.com/watch?v=OnuuYcqhzCE"),
            "youtube",
        );
        expected.artwork_url = Some("https://i.ytimg.com/vi/OnuuYcqhzCE/maxresdefault.jpg".into());
        assert_eq!(d.info, expected);
        assert_eq!(encode_track(&d.info, &d.details), encoded);
    }

    /// disgoorg/disgolink, `track_test.go`: a version-2 track with a stored position.
    #[test]
    fn real_disgolink_v2_track_with_position() {
        let encoded = "QAAAfwIAFkFyY2hpdGVjdHMgLSAiQW5pbWFscyIAD0VwaXRhcGggUmVjb3JkcwAAAAAAA70IAAtqZFdoSmNycmpRcwABACtodHRwczovL3d3dy55b3V0dWJlLmNvbS93YXRjaD92PWpkV2hKY3JyalFzAAd5b3V0dWJlAAAAAAADuiQ=";
        let d = decode_track(encoded, builtin).unwrap();
        assert_eq!(d.version, 2);
        let mut expected = info(
            "Architects - \"Animals\"",
            "Epitaph Records",
            245_000,
            "jdWhJcrrjQs",
            false,
            Some("https://www.youtube.com/watch?v=jdWhJcrrjQs"),
            "youtube",
        );
        expected.position = 244_260;
        assert_eq!(d.info, expected);
    }

    /// Lavalink4NET, `tests/Lavalink4NET.Abstractions.Tests/LavalinkTrackTests.cs`: a version-2
    /// `http` track with probe info `mp3` (the suite only checks it round-trips; the fields are
    /// the ones its bytes hold).
    #[test]
    fn real_lavalink4net_v2_http_track() {
        let encoded = "QAAAiwIAC0RlYXRoIG9mIE1lAApTQUlOVCBQSE5YAAAAAAAAdVgAKGh0dHBzOi8vd3d3Lm1ib3hkcml2ZS5jb20vc3RhcnRtdXNpYy5tcDMAAQAoaHR0cHM6Ly93d3cubWJveGRyaXZlLmNvbS9zdGFydG11c2ljLm1wMwAEaHR0cAADbXAzAAAAAAAAAAA=";
        let url = "https://www.mboxdrive.com/startmusic.mp3";
        let d = decode_track(encoded, builtin).unwrap();
        assert_eq!(d.version, 2);
        assert_eq!(d.details, SourceDetails::ProbeInfo("mp3".into()));
        assert_eq!(
            d.info,
            info(
                "Death of Me",
                "SAINT PHNX",
                30_040,
                url,
                false,
                Some(url),
                "http"
            )
        );
    }

    /// Lavalink4NET, `tests/Lavalink4NET.Abstractions.Tests/LavalinkTrackTests.cs`: a LavaSrc
    /// `spotify` track. Its details are plugin-defined, so without that plugin it is undecodable.
    #[test]
    fn real_plugin_track_is_an_unknown_source() {
        let encoded = "QAACLgMAIFZvaXMgc3VyIHRvbiBjaGVtaW4gLSBUZWNobm8gTWl4AAdCRU5ORVRUAAAAAAACt+wAFjMxbmZkRW9vTEVxN2RuM1VNY0llQjUAAQA1aHR0cHM6Ly9vcGVuLnNwb3RpZnkuY29tL3RyYWNrLzMxbmZkRW9vTEVxN2RuM1VNY0llQjUBAEBodHRwczovL2kuc2Nkbi5jby9pbWFnZS9hYjY3NjE2ZDAwMDBiMjczMWI5NmU2NDUwMTZjNGQ0MzE4NDJhYTkzAQAMREVBNjIyMzAxODAxAAdzcG90aWZ5AQAgVm9pcyBzdXIgdG9uIGNoZW1pbiAoVGVjaG5vIE1peCkBADVodHRwczovL29wZW4uc3BvdGlmeS5jb20vYWxidW0vNzlDeWM4R1JXbkx5amRKU015SjBkQgEANmh0dHBzOi8vb3Blbi5zcG90aWZ5LmNvbS9hcnRpc3QvMXI0M3dXNzB0bkdVYXVRWXZZNXc0OAEAQGh0dHBzOi8vaS5zY2RuLmNvL2ltYWdlL2FiNjc2MTYxMDAwMGU1ZWI4MTFiYzk2N2VlZDNkNjFlMThmZGE0OWIBAGtodHRwczovL3Auc2Nkbi5jby9tcDMtcHJldmlldy8zMzU0YWZlNDI5NmQyYjg4OWQzNjk2NTgwNGQ0MTRjNWMyYjM0MTJiP2NpZD1kZmI5ZjcxMDNmNDI0M2Q2Yjg5NzcyYjBhZDhmMTkwNgAAAAAAAAAAAA==";
        assert_eq!(
            decode_track(encoded, builtin),
            Err(TrackDecodeError::UnknownSource("spotify".into()))
        );
    }

    // ---- Property: decode(encode(t)) == t.

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => any::<String>(),
            4 => "[a-zA-Z0-9 \u{0}é€\u{FFFF}😀🌿𝄞|:/]{0,40}",
            1 => "[a\u{0}😀]{5000,10000}",
        ]
    }

    fn track_info() -> impl Strategy<Value = TrackInfo> {
        (
            (text(), text(), text(), text()),
            (any::<i64>(), any::<i64>(), any::<bool>()),
            (
                proptest::option::of(text()),
                proptest::option::of(text()),
                proptest::option::of(text()),
            ),
        )
            .prop_map(
                |(
                    (title, author, identifier, source_name),
                    (length, position, is_stream),
                    (uri, artwork_url, isrc),
                )| TrackInfo {
                    identifier,
                    is_seekable: !is_stream,
                    author,
                    length,
                    is_stream,
                    position,
                    title,
                    uri,
                    artwork_url,
                    isrc,
                    source_name,
                },
            )
    }

    fn details() -> impl Strategy<Value = SourceDetails> {
        prop_oneof![
            Just(SourceDetails::None),
            text().prop_map(SourceDetails::ProbeInfo),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn decode_inverts_encode(t in track_info(), details in details()) {
            let layout = match details {
                SourceDetails::None => DetailsLayout::Empty,
                SourceDetails::ProbeInfo(_) => DetailsLayout::ProbeInfo,
            };
            let encoded = encode_track(&t, &details);
            prop_assert_eq!(try_encode_track(&t, &details), Ok(encoded.clone()));
            let message = bytes_of(&encoded);
            let header = u32::from_be_bytes(message[..4].try_into().unwrap());
            prop_assert_eq!(header, 1 << 30 | (message.len() as u32 - 4));
            if message.len() - 4 < 1 << 14 {
                prop_assert!(encoded.starts_with("QAA"));
            }
            let d = decode_track(&encoded, |name| {
                (name == t.source_name).then_some(layout)
            })
            .unwrap();
            prop_assert_eq!(d.version, 3);
            prop_assert_eq!(d.details, details);
            prop_assert_eq!(d.info, t);
        }
    }
}
