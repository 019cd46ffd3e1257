//! Media inspection for `/v4/loadtracks`: sniff the container, then let symphonia read just the
//! headers for the title, author, ISRC and duration, and check the codec can be decoded.
//! Blocking: run it off the async runtime (its reads wait on the network or the disk).

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::LazyLock;

use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::AudioCodecId;
use symphonia::core::codecs::audio::well_known as codec_ids;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::{Hint, Probe};
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTag, Tag};
use symphonia::core::units::{Duration, TimeBase};
use symphonia::default::{formats, meta};

use crate::protocol::load::Exception;

use super::error;
use super::playlist::MAX_TEXT_BYTES;
use super::sniff::{self, Container, MediaHint, PlaylistKind, Sniffed};

/// How many bytes are sniffed.
const SNIFF_BYTES: usize = 8 * 1024;
/// The bytes of a Matroska file searched for its segment title.
const MKV_HEAD_BYTES: usize = 64 * 1024;
/// At most this many ID3v2 tags in a row are skipped before sniffing.
const MAX_ID3_TAGS: usize = 4;

/// What the headers say about a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub container: Container,
    pub title: Option<String>,
    pub author: Option<String>,
    pub isrc: Option<String>,
    /// `None`: unknown (a stream).
    pub length_ms: Option<u64>,
}

/// What an inspected resource turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspection {
    Media(ProbeOutcome),
    Playlist { kind: PlaylistKind, text: String },
}

/// Inspects `source` from its start. `read_error` is the friendly message for I/O failures
/// (it differs between a URL and a file).
pub fn inspect(
    mut source: Box<dyn MediaSource>,
    hint: &MediaHint,
    read_error: &str,
) -> Result<Inspection, Exception> {
    let io_err = |e: io::Error| map_io_error(e, read_error);

    // Skip leading ID3v2 tags to see what they precede.
    let mut offset = 0u64;
    let mut tags = 0;
    let mut head = read_up_to(&mut source, SNIFF_BYTES).map_err(io_err)?;
    while let Some(len) = sniff::id3v2_len(&head) {
        tags += 1;
        offset += len;
        if tags > MAX_ID3_TAGS {
            break;
        }
        source.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        head = read_up_to(&mut source, SNIFF_BYTES).map_err(io_err)?;
    }

    match sniff::sniff(&head, hint, tags > 0) {
        Sniffed::Media {
            container,
            audio_offset,
            mp3_bitrate,
        } => {
            source.seek(SeekFrom::Start(0)).map_err(io_err)?;
            // symphonia keeps a Matroska segment's title to itself: read it from the head.
            let segment_title = if container == Container::Matroska {
                let head = read_up_to(&mut source, MKV_HEAD_BYTES).map_err(io_err)?;
                source.seek(SeekFrom::Start(0)).map_err(io_err)?;
                matroska_title(&head)
            } else {
                None
            };
            let audio_start = offset + audio_offset as u64;
            probe_container(
                source,
                container,
                audio_start,
                mp3_bitrate,
                segment_title,
                read_error,
            )
            .map(Inspection::Media)
        }
        Sniffed::Playlist(kind) => {
            source.seek(SeekFrom::Start(0)).map_err(io_err)?;
            let bytes = read_up_to(&mut source, MAX_TEXT_BYTES).map_err(io_err)?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            Ok(Inspection::Playlist { kind, text })
        }
        Sniffed::Unsupported(what) => Err(error::unsupported_media(
            error::UNSUPPORTED_FORMAT,
            &format!("the media is {what}"),
        )),
        Sniffed::Markup => Err(error::unknown_format("the content is a web page (markup)")),
        Sniffed::Unknown => Err(error::unknown_format(&format!(
            "no known container in the first {} bytes",
            head.len()
        ))),
    }
}

/// Reads until `limit` bytes or EOF.
fn read_up_to(source: &mut dyn Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(limit.min(SNIFF_BYTES));
    source.take(limit as u64).read_to_end(&mut out)?;
    Ok(out)
}

fn map_io_error(e: io::Error, read_error: &str) -> Exception {
    error::read_failed(read_error, &e.to_string())
}

/// A symphonia probe that knows only `container` (and the tags that go with it), so nothing
/// else can be mistaken for it.
fn probe_for(container: Container) -> &'static Probe {
    static PROBES: LazyLock<Vec<(Container, Probe)>> = LazyLock::new(|| {
        Container::ALL
            .into_iter()
            .map(|c| {
                let mut probe = Probe::new();
                match c {
                    Container::Mp3 => {
                        probe.register_format::<formats::MpaReader<'_>>();
                        probe.register_metadata::<meta::Id3v2Reader<'_>>();
                        probe.register_metadata::<meta::Id3v1Reader<'_>>();
                        probe.register_metadata::<meta::ApeReader<'_>>();
                    }
                    Container::Flac => {
                        probe.register_format::<formats::FlacReader<'_>>();
                        probe.register_metadata::<meta::Id3v2Reader<'_>>();
                    }
                    Container::Adts => {
                        probe.register_format::<formats::AdtsReader<'_>>();
                        probe.register_metadata::<meta::Id3v2Reader<'_>>();
                    }
                    Container::Wav => probe.register_format::<formats::WavReader<'_>>(),
                    Container::Ogg => probe.register_format::<formats::OggReader<'_>>(),
                    Container::Mp4 => probe.register_format::<formats::IsoMp4Reader<'_>>(),
                    Container::Matroska => probe.register_format::<formats::MkvReader<'_>>(),
                }
                (c, probe)
            })
            .collect()
    });
    PROBES
        .iter()
        .find(|(c, _)| *c == container)
        .map(|(_, p)| p)
        .expect("a probe per container")
}

/// Opens a symphonia format reader for `container` over `source` (positioned at its start).
/// The same reader the load-time probe used, for the audio engine.
pub fn format_reader(
    source: Box<dyn MediaSource>,
    container: Container,
) -> Result<Box<dyn FormatReader>, SymphoniaError> {
    let mss = MediaSourceStream::new(source, Default::default());
    probe_for(container).probe(
        &Hint::new(),
        mss,
        FormatOptions::default(),
        MetadataOptions::default(),
    )
}

/// Whether the audio engine can decode `codec` (symphonia's decoders, plus libopus for Opus).
pub fn codec_supported(codec: AudioCodecId) -> bool {
    codec == codec_ids::CODEC_ID_OPUS
        || symphonia::default::get_codecs()
            .get_audio_decoder(codec)
            .is_some()
}

fn codec_name(codec: AudioCodecId) -> String {
    use codec_ids::*;
    let name = match codec {
        c if c == CODEC_ID_AC3 => "AC-3",
        c if c == CODEC_ID_EAC3 => "E-AC-3",
        c if c == CODEC_ID_DCA => "DTS",
        c if c == CODEC_ID_WMA => "WMA",
        c if c == CODEC_ID_MP1 => "MPEG layer I",
        c if c == CODEC_ID_MP2 => "MPEG layer II",
        c if c == CODEC_ID_SPEEX => "Speex",
        c if c == CODEC_ID_MUSEPACK => "Musepack",
        c if c == CODEC_ID_WAVPACK => "WavPack",
        c if c == CODEC_ID_TRUEHD => "TrueHD",
        _ => return format!("codec id {codec}"),
    };
    name.to_string()
}

fn probe_container(
    source: Box<dyn MediaSource>,
    container: Container,
    audio_start: u64,
    mp3_bitrate: Option<u32>,
    segment_title: Option<String>,
    read_error: &str,
) -> Result<ProbeOutcome, Exception> {
    let byte_len = source.byte_len();
    let label = container.label();
    let mut format = format_reader(source, container).map_err(|e| match e {
        SymphoniaError::IoError(e) if e.kind() != io::ErrorKind::UnexpectedEof => {
            map_io_error(e, read_error)
        }
        other => error::unsupported_media(
            &format!("The {label} file could not be read."),
            &other.to_string(),
        ),
    })?;

    let track = format
        .default_track(TrackType::Audio)
        .or_else(|| format.first_track(TrackType::Audio))
        .ok_or_else(|| {
            error::unsupported_media(
                &format!("The {label} file has no audio track."),
                "no audio track",
            )
        })?;
    let Some(CodecParameters::Audio(params)) = &track.codec_params else {
        return Err(error::unsupported_media(
            &format!("The {label} file has no audio track."),
            "no audio codec parameters",
        ));
    };
    if !codec_supported(params.codec) {
        // Another audio track may still be playable.
        let playable = format.tracks().iter().any(|t| {
            matches!(&t.codec_params, Some(CodecParameters::Audio(p)) if codec_supported(p.codec))
        });
        if !playable {
            return Err(error::unsupported_media(
                &format!(
                    "The {label} file uses an unsupported audio codec ({}).",
                    codec_name(params.codec)
                ),
                "no decoder for the audio track",
            ));
        }
    }

    let to_ms = |tb: Option<TimeBase>, d: Option<Duration>| {
        tb?.calc_duration(d?)
            .and_then(|t| u64::try_from(t.as_millis()).ok())
    };
    let media = format.media_info();
    let mut length_ms = to_ms(
        track.time_base,
        track.duration.or(track.num_frames.map(Duration::from)),
    )
    // Matroska knows the duration of the segment, not of the track.
    .or_else(|| to_ms(media.time_base, media.duration));
    if length_ms.is_none() && container == Container::Mp3 {
        // No Xing/VBRI header and a source that cannot seek: estimate from the first frame's
        // bit rate and the byte length, as lavaplayer does for constant bit rate files.
        if let (Some(len), Some(bitrate)) = (byte_len, mp3_bitrate) {
            let audio_bytes = len.saturating_sub(audio_start);
            length_ms = Some(audio_bytes * 8000 / u64::from(bitrate));
        }
    }

    let track_id = u64::from(track.id);
    let mut tags = TagSummary::default();
    let mut metadata = format.metadata();
    while let Some(revision) = metadata.pop() {
        tags.absorb(&revision, track_id);
    }
    if let Some(revision) = metadata.current() {
        tags.absorb(revision, track_id);
    }

    Ok(ProbeOutcome {
        container,
        title: tags.title.or(segment_title),
        author: tags.artist.or(tags.other_author),
        isrc: tags.isrc,
        length_ms,
    })
}

/// Reads an EBML variable-length integer: (value, length). `keep_marker` for element IDs.
fn ebml_vint(b: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || b.len() < len {
        return None;
    }
    let mut value = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & (0xFF >> len)
    };
    for &byte in &b[1..len] {
        value = (value << 8) | u64::from(byte);
    }
    Some((value, len))
}

/// The body of the first child element `id` among the elements in `data` (cut short at the end
/// of `data`; an element of unknown size extends to the end).
fn ebml_child(data: &[u8], id: u64) -> Option<&[u8]> {
    let mut pos = 0;
    while pos < data.len() {
        let (element, id_len) = ebml_vint(&data[pos..], true)?;
        let (size, size_len) = ebml_vint(&data[pos + id_len..], false)?;
        let body = pos + id_len + size_len;
        let unknown = size == (1u64 << (7 * size_len)) - 1;
        let end = if unknown {
            data.len()
        } else {
            usize::try_from(size)
                .ok()
                .and_then(|s| body.checked_add(s))
                .unwrap_or(usize::MAX)
        };
        if element == id {
            return data.get(body..end.min(data.len()));
        }
        pos = end;
    }
    None
}

/// The `Title` of a Matroska segment's `Info`, from the first bytes of the file.
pub fn matroska_title(head: &[u8]) -> Option<String> {
    const SEGMENT: u64 = 0x1853_8067;
    const INFO: u64 = 0x1549_A966;
    const TITLE: u64 = 0x7BA9;
    let segment = ebml_child(head, SEGMENT)?;
    let info = ebml_child(segment, INFO)?;
    let title = ebml_child(info, TITLE)?;
    let title = String::from_utf8_lossy(title);
    let title = title.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!title.is_empty()).then(|| title.to_string())
}

/// Tags found so far; a later revision's non-empty value replaces an earlier one (the forward
/// ID3v2 tag is read after a trailing ID3v1 tag, and is the better one).
#[derive(Default)]
struct TagSummary {
    title: Option<String>,
    artist: Option<String>,
    other_author: Option<String>,
    isrc: Option<String>,
}

impl TagSummary {
    fn absorb(&mut self, revision: &MetadataRevision, track_id: u64) {
        let per_track = revision
            .per_track
            .iter()
            .filter(|t| t.track_id == track_id || revision.per_track.len() == 1)
            .flat_map(|t| t.metadata.tags.iter());
        for tag in revision.media.tags.iter().chain(per_track) {
            self.absorb_tag(tag);
        }
    }

    fn absorb_tag(&mut self, tag: &Tag) {
        let Some(std) = &tag.std else { return };
        let (slot, value) = match std {
            StandardTag::TrackTitle(v) => (&mut self.title, v),
            StandardTag::Artist(v) => (&mut self.artist, v),
            StandardTag::AlbumArtist(v) | StandardTag::Performer(v) => (&mut self.other_author, v),
            StandardTag::IdentIsrc(v) => (&mut self.isrc, v),
            _ => return,
        };
        let value = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        if !value.is_empty() {
            *slot = Some(value.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn boxed(bytes: Vec<u8>) -> Box<dyn MediaSource> {
        Box::new(Cursor::new(bytes))
    }

    #[test]
    fn html_is_unknown_format() {
        let e = inspect(
            boxed(b"<!doctype html><title>x</title>".to_vec()),
            &MediaHint::default(),
            "x",
        )
        .unwrap_err();
        assert_eq!(e.message.as_deref(), Some("Unknown file format."));
        assert_eq!(e.severity, crate::protocol::load::Severity::Common);
    }

    #[test]
    fn empty_input_is_unknown_format() {
        let e = inspect(boxed(Vec::new()), &MediaHint::default(), "x").unwrap_err();
        assert_eq!(e.message.as_deref(), Some("Unknown file format."));
    }

    #[test]
    fn playlist_text_is_returned_whole() {
        let text = "#EXTM3U\n#EXTINF:1,A\nhttp://h/a.mp3\n";
        let got = inspect(boxed(text.as_bytes().to_vec()), &MediaHint::default(), "x").unwrap();
        assert_eq!(
            got,
            Inspection::Playlist {
                kind: PlaylistKind::M3u,
                text: text.into()
            }
        );
    }

    /// A WAV header claiming PCM data: the duration comes from the header.
    fn wav(seconds: u32, rate: u32) -> Vec<u8> {
        let channels = 1u16;
        let bytes_per_sample = 2u16;
        let data_len = seconds * rate * u32::from(channels * bytes_per_sample);
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(channels * bytes_per_sample)).to_le_bytes());
        v.extend_from_slice(&(channels * bytes_per_sample).to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        v.resize(v.len() + data_len as usize, 0);
        v
    }

    #[test]
    fn untagged_wav_has_length_and_no_tags() {
        let got = inspect(boxed(wav(2, 8000)), &MediaHint::default(), "x").unwrap();
        assert_eq!(
            got,
            Inspection::Media(ProbeOutcome {
                container: Container::Wav,
                title: None,
                author: None,
                isrc: None,
                length_ms: Some(2000),
            })
        );
    }

    #[test]
    fn matroska_segment_title() {
        // EBML header, then a segment of unknown size: a Void, then Info with a Title.
        let mut v = vec![0x1A, 0x45, 0xDF, 0xA3, 0x84, 0x42, 0x86, 0x81, 0x01];
        v.extend_from_slice(&[
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        v.extend_from_slice(&[0xEC, 0x83, 0, 0, 0]);
        let title = b"Caf\xC3\xA9 Song";
        v.extend_from_slice(&[0x15, 0x49, 0xA9, 0x66, 0x80 | (title.len() as u8 + 3)]);
        v.extend_from_slice(&[0x7B, 0xA9, 0x80 | title.len() as u8]);
        v.extend_from_slice(title);
        assert_eq!(matroska_title(&v).as_deref(), Some("Café Song"));
        // Cut short, missing, or garbage: no title and no panic.
        assert_eq!(matroska_title(&v[..v.len() - 3]).as_deref(), Some("Café S"));
        assert_eq!(matroska_title(&v[..20]), None);
        assert_eq!(matroska_title(&[0x00, 0xFF, 0x12]), None);
        assert_eq!(matroska_title(&[]), None);
    }

    #[test]
    fn truncated_container_is_a_clear_error() {
        let e = inspect(
            boxed(b"\0\0\0\x20ftypM4A \0\0\0\0".to_vec()),
            &MediaHint::default(),
            "x",
        )
        .unwrap_err();
        assert_eq!(
            e.message.as_deref(),
            Some("The MP4 file could not be read.")
        );
        assert_eq!(e.severity, crate::protocol::load::Severity::Common);
    }
}
