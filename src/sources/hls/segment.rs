//! What HLS segments hold, and the bytes the reader hands on for each: MPEG-TS segments are
//! demuxed (with the `mpeg2ts` crate) to their first audio elementary stream, ADTS AAC or MPEG
//! audio, so consecutive segments join into one continuous ADTS/MP3 stream; fMP4 segments
//! (`moof`+`mdat`) follow their initialisation section as they are, one fragmented MP4;
//! packed-audio segments (raw ADTS or MP3) lose their leading ID3 timestamp tag.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

use mpeg2ts::pes::{PesPacketReader, ReadPesPacket};
use mpeg2ts::ts::TsPacketReader;

use crate::sources::sniff::{self, Container, MediaHint, Sniffed};

/// The kind of the segments of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// MPEG-TS carrying ADTS AAC (`Container::Adts`) or MPEG audio (`Container::Mp3`).
    Ts(Container),
    /// Fragmented MP4 after an initialisation section.
    Fmp4,
    /// Packed audio: raw ADTS or MP3 segments.
    Packed(Container),
}

impl Kind {
    /// The container of the joined stream.
    pub fn container(self) -> Container {
        match self {
            Kind::Ts(c) | Kind::Packed(c) => c,
            Kind::Fmp4 => Container::Mp4,
        }
    }
}

/// Why a segment gives no audio.
pub type SegmentError = String;

/// The kind of a stream from its first segment (and initialisation section, if any).
pub fn detect(init: Option<&[u8]>, first: &[u8]) -> Result<Kind, SegmentError> {
    if init.is_some() || is_mp4(first) {
        return Ok(Kind::Fmp4);
    }
    if is_ts(first) {
        let audio = demux_ts(first)?;
        return match audio_container(&audio) {
            Some(c) => Ok(Kind::Ts(c)),
            None => Err("the transport stream's audio is neither ADTS AAC nor MPEG audio".into()),
        };
    }
    let body = skip_id3(first);
    match audio_container(body) {
        Some(c) => Ok(Kind::Packed(c)),
        None => Err("the segments are neither MPEG-TS, fMP4, ADTS AAC nor MP3".into()),
    }
}

/// The bytes of one segment as the joined stream carries them.
pub fn output(kind: Kind, segment: &[u8]) -> Result<Vec<u8>, SegmentError> {
    match kind {
        Kind::Ts(_) => demux_ts(segment),
        Kind::Fmp4 => Ok(segment.to_vec()),
        Kind::Packed(_) => Ok(skip_id3(segment).to_vec()),
    }
}

fn is_ts(b: &[u8]) -> bool {
    b.len() >= 188 && b[0] == 0x47 && (b.len() < 189 || b[188] == 0x47)
}

fn is_mp4(b: &[u8]) -> bool {
    b.len() >= 8 && matches!(&b[4..8], b"ftyp" | b"styp" | b"moof" | b"sidx" | b"moov")
}

fn skip_id3(mut b: &[u8]) -> &[u8] {
    while let Some(len) = sniff::id3v2_len(b) {
        let Ok(len) = usize::try_from(len) else { break };
        if len > b.len() {
            break;
        }
        b = &b[len..];
    }
    b
}

/// ADTS or MPEG audio (layer III) at the start of `es`.
fn audio_container(es: &[u8]) -> Option<Container> {
    let head = &es[..es.len().min(8 * 1024)];
    let hint = MediaHint::default();
    match sniff::sniff(head, &hint, true) {
        Sniffed::Media {
            container: c @ (Container::Adts | Container::Mp3),
            ..
        } => Some(c),
        _ => None,
    }
}

/// The payload of the first audio stream of a transport stream segment.
pub fn demux_ts(segment: &[u8]) -> Result<Vec<u8>, SegmentError> {
    let position = Rc::new(Cell::new(0usize));
    let feed = Feed {
        data: segment,
        position: position.clone(),
    };
    let mut reader = PesPacketReader::new(TsPacketReader::new(feed));
    let mut out = Vec::with_capacity(segment.len());
    let mut stream = None;
    let mut errors = 0;
    loop {
        match reader.read_pes_packet() {
            Ok(Some(packet)) => {
                let id = packet.header.stream_id;
                if !id.is_audio() || *stream.get_or_insert(id.as_u8()) != id.as_u8() {
                    continue;
                }
                out.extend_from_slice(&packet.data);
            }
            Ok(None) => break,
            Err(e) => {
                // A packet the reader does not take (a PID outside the program, a damaged
                // packet): go on from the next packet boundary.
                errors += 1;
                if errors > MAX_TS_ERRORS {
                    return Err(format!("the MPEG-TS segment cannot be read: {e}"));
                }
                tracing::trace!("skipping an MPEG-TS packet: {e}");
                let at = position.get();
                position.set(at.div_ceil(TS_PACKET) * TS_PACKET);
            }
        }
    }
    if out.is_empty() {
        return Err("the MPEG-TS segment has no audio stream".into());
    }
    Ok(out)
}

const TS_PACKET: usize = 188;
/// Unreadable packets in one segment before it is given up.
const MAX_TS_ERRORS: usize = 256;

/// The segment's bytes for the TS reader, with a position the demuxer can move to the next
/// packet boundary after a packet the reader gave up on part-way.
struct Feed<'a> {
    data: &'a [u8],
    position: Rc<Cell<usize>>,
}

impl Read for Feed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let at = self.position.get().min(self.data.len());
        let n = buf.len().min(self.data.len() - at);
        buf[..n].copy_from_slice(&self.data[at..at + n]);
        self.position.set(at + n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adts_frames(n: usize) -> Vec<u8> {
        let len = 200usize;
        let mut v = Vec::new();
        for _ in 0..n {
            v.extend_from_slice(&[
                0xFF,
                0xF1,
                0x50,
                0x80 | ((len >> 11) as u8 & 3),
                (len >> 3) as u8,
                ((len & 7) << 5) as u8 | 0x1F,
                0xFC,
            ]);
            v.resize(v.len() + len - 7, 0x21);
        }
        v
    }

    #[test]
    fn kinds() {
        assert_eq!(
            detect(Some(b"init"), b"\0\0\0\x10moof").unwrap(),
            Kind::Fmp4
        );
        assert_eq!(detect(None, b"\0\0\0\x18styp").unwrap(), Kind::Fmp4);
        let mut id3 = b"ID3\x04\x00\x00\x00\x00\x00\x05".to_vec();
        id3.extend_from_slice(&[0; 5]);
        id3.extend(adts_frames(3));
        assert_eq!(detect(None, &id3).unwrap(), Kind::Packed(Container::Adts));
        assert_eq!(
            output(Kind::Packed(Container::Adts), &id3).unwrap(),
            adts_frames(3)
        );
        assert!(detect(None, b"<html>").is_err());
    }

    #[test]
    fn a_transport_stream_without_audio_is_refused() {
        // PAT only, then padding: no program, no audio.
        let mut ts = vec![0x47, 0x40, 0x00, 0x10, 0x00];
        ts.extend_from_slice(&[0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00]);
        ts.extend_from_slice(&[0x00, 0x01, 0xF0, 0x00]);
        ts.extend_from_slice(&[0x2A, 0xB1, 0x04, 0xB2]);
        ts.resize(188, 0xFF);
        let mut two = ts.clone();
        two.extend_from_slice(&ts);
        assert!(detect(None, &two).is_err());
    }
}
