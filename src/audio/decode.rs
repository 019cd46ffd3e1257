//! Demux and decode with symphonia: probing the container, picking the audio track, reading
//! its packets, decoding them to interleaved stereo at the source rate, seeking, and the error
//! policy (a corrupt packet is skipped while the codec can resync; a run of failures, or a
//! container that cannot go on, is fatal; the end of the bytes is the end of the track).
//!
//! Opus is decoded by libopus through `symphonia-adapter-libopus`, registered next to
//! symphonia's own decoders.
//!
//! Some gaps of symphonia are covered here: its MP4 reader ignores edit lists, so AAC keeps the
//! encoder's 1024 priming samples (dropped here, and accounted for in seeks); Opus packet
//! timestamps do not account for the stream's pre-skip (the decoder cuts it from the first
//! packet only; seeks account for it here); readers that reached the end may refuse to seek
//! (Matroska, MP4), so such a seek re-probes the stream from its start first; and an MP4 whose
//! `mdat` runs past the end of the bytes (a cut-off file) cannot be read as a seekable file at
//! all, but can as a stream, so a reader that fails before its first packet gets a second
//! probe that reads the media front to back.

use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use symphonia::core::audio::{Channels, GenericAudioBufferRef};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known::{CODEC_ID_AAC, CODEC_ID_OPUS};
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::{Error as SymError, SeekErrorKind};
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;
use symphonia::core::units::{Time, TimeBase};

use super::downmix::Downmix;
use super::pipeline::AudioError;
use crate::sources::MediaReader;

/// Priming samples AAC encoders put before the audio (one frame); symphonia does not drop them.
const AAC_PRIMING: i64 = 1024;

/// How far before a seek target decoding restarts: decoders settle (Opus asks for 80 ms of
/// pre-roll, MP3 needs its bit reservoir) and readers that land late still land early enough.
/// The surplus is decoded and discarded.
const SEEK_PREROLL_MS: i64 = 100;

/// Consecutive undecodable packets (or demuxer errors) after which the track is given up.
pub(crate) const MAX_CONSECUTIVE_ERRORS: u32 = 32;

/// symphonia's decoders plus libopus for Opus.
static CODECS: LazyLock<CodecRegistry> = LazyLock::new(|| {
    let mut registry = CodecRegistry::new();
    symphonia::default::register_enabled_codecs(&mut registry);
    registry.register_audio_decoder::<symphonia_adapter_libopus::OpusDecoder>();
    registry
});

/// The most bytes one read of the demuxer's stream takes from the media reader.
///
/// symphonia's stream buffer asks for up to 32 KiB at a time and is read down before it asks
/// again. The audio engine judges whether a frame can be made without blocking by what the
/// reader holds (see `pipeline::State::is_ready`); whatever sits unread in the stream buffer
/// is hidden from it. Small reads keep that hidden part small, so a stream that arrives at
/// real time does not look short of bytes while its next packets are in fact at hand.
pub(crate) const READ_CHUNK: usize = 4 * 1024;

/// The media reader, shared so that it outlives a reader symphonia gave up on and can be
/// probed again, with a switch that hides its seekability (for a front-to-back probe).
#[derive(Clone)]
struct SharedMedia {
    reader: Arc<Mutex<Box<dyn MediaReader>>>,
    seekable: Arc<AtomicBool>,
    /// Bytes taken from the reader so far.
    pulled: Arc<AtomicU64>,
}

impl SharedMedia {
    /// A fresh stream over the media from its first byte.
    fn stream(&self, seekable: bool) -> Result<MediaSourceStream<'static>, AudioError> {
        let mut reader = self.reader.lock();
        if reader.stream_position().ok() != Some(0) {
            reader
                .seek(SeekFrom::Start(0))
                .map_err(|e| AudioError::Io(format!("rewinding the media: {e}")))?;
        }
        drop(reader);
        self.seekable.store(seekable, Ordering::Relaxed);
        Ok(MediaSourceStream::new(
            Box::new(self.clone()),
            MediaSourceStreamOptions::default(),
        ))
    }
}

impl Read for SharedMedia {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let len = buf.len().min(READ_CHUNK);
        let n = self.reader.lock().read(&mut buf[..len])?;
        self.pulled.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Seek for SharedMedia {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.reader.lock().seek(pos)
    }
}

impl MediaSource for SharedMedia {
    fn is_seekable(&self) -> bool {
        self.seekable.load(Ordering::Relaxed) && self.reader.lock().is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        // A stream with a known end is still searched for trailing data; hide that too.
        if self.seekable.load(Ordering::Relaxed) {
            self.reader.lock().byte_len()
        } else {
            None
        }
    }
}

/// Where a seek landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeekOutcome {
    /// Packets now start at or before the target; decoded audio before `required` (a timestamp
    /// in the track's time base) must be discarded.
    At { required: i64 },
    /// The target lies beyond the end of the media.
    PastEnd,
}

/// One decoded packet, borrowed from the decoder until mixed.
pub(crate) struct DecodedAudio<'a> {
    buf: GenericAudioBufferRef<'a>,
    downmix: &'a Downmix,
    time_base: Option<TimeBase>,
    priming: i64,
    first: bool,
}

impl DecodedAudio<'_> {
    /// Whether this was the decoder's first packet since it was created (not reset). For Opus,
    /// that one had the stream's pre-skip cut from its start.
    pub(crate) fn first_decode(&self) -> bool {
        self.first
    }

    /// A timestamp of the track as a frame index at `rate`.
    pub(crate) fn ts_to_frames(&self, ts: i64, rate: u32) -> i64 {
        ts_to_frames(self.time_base, ts, rate)
    }

    /// First decoded frame of `packet` at `rate` (see [`SourceDecoder::packet_start_frame`]).
    pub(crate) fn packet_start_frame(&self, packet: &Packet, rate: u32) -> i64 {
        packet_start_frame(self.time_base, self.priming, packet, rate)
    }

    pub(crate) fn rate(&self) -> u32 {
        self.buf.spec().rate()
    }

    pub(crate) fn frames(&self) -> usize {
        self.buf.frames()
    }

    /// Writes frames `skip..` as interleaved stereo into `out` (`2 × (frames − skip)` samples).
    pub(crate) fn mix_into(&self, skip: usize, out: &mut [f32]) {
        let d = self.downmix;
        match &self.buf {
            GenericAudioBufferRef::U8(b) => d.mix(b, skip, out),
            GenericAudioBufferRef::U16(b) => d.mix(b, skip, out),
            GenericAudioBufferRef::U24(b) => d.mix(b, skip, out),
            GenericAudioBufferRef::U32(b) => d.mix(b, skip, out),
            GenericAudioBufferRef::S8(b) => d.mix(b, skip, out),
            GenericAudioBufferRef::S16(b) => d.mix(b, skip, out),
            GenericAudioBufferRef::S24(b) => d.mix(b, skip, out),
            GenericAudioBufferRef::S32(b) => d.mix(b, skip, out),
            GenericAudioBufferRef::F32(b) => d.mix(b, skip, out),
            GenericAudioBufferRef::F64(b) => d.mix(b, skip, out),
        }
    }
}

/// The demuxer and decoder of one track.
pub(crate) struct SourceDecoder {
    /// Always present; taken only while re-probing.
    format: Option<Box<dyn FormatReader>>,
    media: SharedMedia,
    /// Packets of the track read since the last probe.
    packets_read: u64,
    hint: Hint,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    params: AudioCodecParameters,
    time_base: Option<TimeBase>,
    /// Decoded frames of a packet that come before its timestamp (encoder priming the
    /// decoder leaves in).
    priming: i64,
    /// Whether the decoder leaves that priming in at the start of the stream too.
    priming_at_start: bool,
    /// The conversion for the layout last decoded.
    downmix: Option<(Channels, Downmix)>,
    consecutive_errors: u32,
    /// Successful decodes since the decoder was created (not reset).
    decodes_since_create: u64,
    /// The target timestamp of the last successful seek.
    last_seek_required: i64,
    /// The reader reached the end of the media (some cannot seek from there).
    at_end: bool,
}

impl SourceDecoder {
    /// Probes the media (blocking reads) and builds the decoder of its default audio track.
    pub(crate) fn open(
        reader: Box<dyn MediaReader>,
        extension: Option<&str>,
        mime: Option<&str>,
    ) -> Result<SourceDecoder, AudioError> {
        let media = SharedMedia {
            reader: Arc::new(Mutex::new(reader)),
            seekable: Arc::new(AtomicBool::new(true)),
            pulled: Arc::new(AtomicU64::new(0)),
        };
        let mut hint = Hint::new();
        if let Some(ext) = extension.filter(|e| !e.is_empty()) {
            hint.with_extension(ext);
        }
        if let Some(mime) = mime.filter(|m| !m.is_empty()) {
            hint.mime_type(mime);
        }
        let format = match probe(&hint, media.stream(true)?) {
            Ok(format) => format,
            Err(first) => {
                // Readers that look for an index or a segment end past the end of a cut-off
                // file fail on it as a seekable file; as a stream they read what there is.
                tracing::debug!("probe failed ({first}); probing the media as a stream");
                probe(&hint, media.stream(false)?).map_err(|_| probe_error(first))?
            }
        };
        let (track_id, params, time_base) = pick_track(format.as_ref())?;
        let decoder = make_decoder(&params)?;
        Ok(SourceDecoder {
            format: Some(format),
            media,
            packets_read: 0,
            hint,
            decoder,
            track_id,
            priming: priming(&params).0,
            priming_at_start: priming(&params).1,
            params,
            time_base,
            downmix: None,
            consecutive_errors: 0,
            decodes_since_create: 0,
            last_seek_required: 0,
            at_end: false,
        })
    }

    /// Bytes the demuxer has taken from the media reader so far (probes and seeks included).
    pub(crate) fn bytes_pulled(&self) -> u64 {
        self.media.pulled.load(Ordering::Relaxed)
    }

    /// Whether the track is Opus.
    pub(crate) fn is_opus(&self) -> bool {
        self.params.codec == CODEC_ID_OPUS
    }

    /// Channel count the container declares (0 if unknown).
    pub(crate) fn declared_channels(&self) -> usize {
        self.params.channels.as_ref().map_or(0, Channels::count)
    }

    /// Sample rate the container declares.
    pub(crate) fn declared_rate(&self) -> Option<u32> {
        self.params.sample_rate
    }

    /// The next packet of the track; `Ok(None)` at the end of the media (including media cut
    /// short: a body shorter than its header claims ends where the bytes end).
    pub(crate) fn next_packet(&mut self) -> Result<Option<Packet>, AudioError> {
        loop {
            let format = self.format.as_mut().ok_or_else(closed)?;
            match format.next_packet() {
                Ok(Some(p)) if p.track_id == self.track_id => {
                    self.packets_read += 1;
                    return Ok(Some(p));
                }
                Ok(Some(_)) => continue,
                Ok(None) => {
                    self.at_end = true;
                    return Ok(None);
                }
                Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                    self.at_end = true;
                    return Ok(None);
                }
                Err(SymError::IoError(e)) => {
                    return Err(AudioError::Io(format!("reading the media: {e}")));
                }
                Err(SymError::ResetRequired) => {
                    // A new logical stream (chained Ogg and the like): new track, new decoder.
                    self.select_track()?;
                }
                Err(SymError::DecodeError(msg)) => {
                    if self.packets_read == 0 && self.media.seekable.load(Ordering::Relaxed) {
                        // A reader that cannot even start: try the media as a stream.
                        tracing::debug!("no first packet ({msg}); reading the media as a stream");
                        self.reprobe(false)?;
                        continue;
                    }
                    self.count_error(msg)?;
                }
                Err(e) => return Err(AudioError::Decode(format!("reading the media: {e}"))),
            }
        }
    }

    /// Decodes `packet`. `Ok(None)` when the packet was corrupt and skipped (the caller goes on
    /// with the next one); an error once too many failed in a row or the codec cannot go on.
    pub(crate) fn decode(
        &mut self,
        packet: &Packet,
    ) -> Result<Option<DecodedAudio<'_>>, AudioError> {
        match self.decoder.decode(packet) {
            Ok(_) => {}
            Err(SymError::DecodeError(msg)) => {
                self.count_error(msg)?;
                return Ok(None);
            }
            Err(SymError::IoError(_)) => {
                // A packet shorter than its own headers say: corrupt.
                self.count_error("truncated packet")?;
                return Ok(None);
            }
            Err(SymError::ResetRequired) => {
                self.decoder.reset();
                return Ok(None);
            }
            Err(e) => return Err(AudioError::Decode(format!("decoding: {e}"))),
        }
        self.consecutive_errors = 0;
        self.decodes_since_create += 1;
        let buf = self.decoder.last_decoded();
        let channels = buf.spec().channels();
        if self.downmix.as_ref().is_none_or(|(c, _)| c != channels) {
            let Some(downmix) = Downmix::for_channels(channels) else {
                return Err(AudioError::Unsupported(
                    "decoded audio has no channels".into(),
                ));
            };
            self.downmix = Some((channels.clone(), downmix));
        }
        let downmix = &self.downmix.as_ref().expect("set above").1;
        Ok(Some(DecodedAudio {
            buf,
            downmix,
            time_base: self.time_base,
            priming: self.priming,
            first: self.decodes_since_create == 1,
        }))
    }

    /// Forgets decoder state (the next packet is not the one after the last decoded).
    pub(crate) fn reset_decoder(&mut self) {
        self.decoder.reset();
    }

    /// Where decoding starts after opening: decoded audio before this timestamp is priming.
    pub(crate) fn start_skip_ts(&self) -> Option<i64> {
        (self.priming_at_start && self.priming > 0).then_some(0)
    }

    /// Seeks so that the next packets start at or before `position_ms`; resets the decoder.
    pub(crate) fn seek(&mut self, position_ms: i64) -> Result<SeekOutcome, AudioError> {
        if self.at_end {
            // Readers that reached the end may not seek back (Matroska, MP4): start afresh.
            self.reprobe(true)?;
        }
        let mut result = self.seek_format(position_ms);
        if let Err(SymError::DecodeError(_) | SymError::IoError(_)) = &result {
            // A reader in a state it cannot seek from: read the stream again from the start.
            tracing::debug!(
                "seek failed ({:?}); re-probing the media",
                result.as_ref().err()
            );
            self.reprobe(true)?;
            result = self.seek_format(position_ms);
        }
        self.decoder.reset();
        self.consecutive_errors = 0;
        match result {
            Ok(()) => Ok(SeekOutcome::At {
                required: self.last_seek_required,
            }),
            Err(SymError::SeekError(SeekErrorKind::OutOfRange)) => Ok(SeekOutcome::PastEnd),
            Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                Ok(SeekOutcome::PastEnd)
            }
            Err(SymError::SeekError(kind)) => Err(AudioError::Unsupported(format!(
                "cannot seek: {}",
                SymError::SeekError(kind)
            ))),
            Err(e) => Err(AudioError::Io(format!("seeking: {e}"))),
        }
    }

    fn seek_format(&mut self, position_ms: i64) -> Result<(), SymError> {
        let target = Time::from_millis(position_ms.max(0));
        let target_ts = self.time_base.and_then(|tb| tb.calc_timestamp(target));
        let preroll = if target_ts.is_some() {
            SEEK_PREROLL_MS
        } else {
            0
        };
        let to = SeekTo::Time {
            time: Time::from_millis((position_ms - preroll).max(0)),
            track_id: Some(self.track_id),
        };
        let format = self
            .format
            .as_mut()
            .ok_or(SymError::Unsupported("the media is closed"))?;
        let seeked = format.seek(SeekMode::Accurate, to)?;
        self.last_seek_required = target_ts.unwrap_or(seeked.required_ts).get();
        Ok(())
    }

    /// Probes the stream again from its first byte, telling symphonia whether it may seek.
    fn reprobe(&mut self, seekable: bool) -> Result<(), AudioError> {
        self.format = None;
        let stream = self.media.stream(seekable)?;
        self.format = Some(probe(&self.hint, stream).map_err(probe_error)?);
        self.at_end = false;
        self.packets_read = 0;
        self.select_track()
    }

    /// (Re)selects the default audio track and builds its decoder.
    fn select_track(&mut self) -> Result<(), AudioError> {
        let format = self.format.as_ref().ok_or_else(closed)?;
        let (track_id, params, time_base) = pick_track(format.as_ref())?;
        self.decoder = make_decoder(&params)?;
        self.track_id = track_id;
        (self.priming, self.priming_at_start) = priming(&params);
        self.params = params;
        self.time_base = time_base;
        self.decodes_since_create = 0;
        Ok(())
    }

    /// A timestamp of this track as a frame index at `rate`.
    pub(crate) fn ts_to_frames(&self, ts: i64, rate: u32) -> i64 {
        ts_to_frames(self.time_base, ts, rate)
    }

    /// First decoded frame of `packet` (its timestamp plus any frames trimmed from its start),
    /// as a frame index at `rate`.
    pub(crate) fn packet_start_frame(&self, packet: &Packet, rate: u32) -> i64 {
        packet_start_frame(self.time_base, self.priming, packet, rate)
    }

    /// Duration of `packet` in frames at `rate` as the container states it (0 if unknown).
    pub(crate) fn packet_frames(&self, packet: &Packet, rate: u32) -> i64 {
        let dur = i64::try_from(packet.dur.get()).unwrap_or(i64::MAX);
        self.ts_to_frames(dur, rate)
    }

    fn count_error(&mut self, what: &str) -> Result<(), AudioError> {
        self.consecutive_errors += 1;
        if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS {
            Err(AudioError::Decode(format!(
                "the media is corrupt: {} packets in a row failed ({what})",
                self.consecutive_errors
            )))
        } else {
            tracing::debug!("skipping a corrupt packet: {what}");
            Ok(())
        }
    }
}

/// A timestamp in `time_base` units as a frame index at `rate` (timestamps count frames when
/// the track has no time base).
fn ts_to_frames(time_base: Option<TimeBase>, ts: i64, rate: u32) -> i64 {
    match time_base {
        Some(tb) => {
            let v = i128::from(ts) * i128::from(tb.numer.get()) * i128::from(rate)
                / i128::from(tb.denom.get());
            v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
        }
        None => ts,
    }
}

fn packet_start_frame(
    time_base: Option<TimeBase>,
    priming: i64,
    packet: &Packet,
    rate: u32,
) -> i64 {
    ts_to_frames(time_base, packet.pts.get(), rate)
        .saturating_add(i64::try_from(packet.trim_start.get()).unwrap_or(i64::MAX))
        .saturating_sub(priming)
}

/// Decoded frames a packet holds before its timestamp, and whether they are left in at the
/// start of the stream too.
fn priming(params: &AudioCodecParameters) -> (i64, bool) {
    if params.codec == CODEC_ID_AAC {
        (AAC_PRIMING, true)
    } else if params.codec == CODEC_ID_OPUS {
        // OpusHead: "OpusHead", version, channels, pre-skip (u16 LE) at byte 10. The decoder
        // cuts it from the stream's first packet itself.
        let pre_skip = params
            .extra_data
            .as_deref()
            .filter(|h| h.len() >= 12 && h.starts_with(b"OpusHead"))
            .map_or(0, |h| i64::from(u16::from_le_bytes([h[10], h[11]])));
        (pre_skip, false)
    } else {
        (0, false)
    }
}

fn closed() -> AudioError {
    AudioError::Io("the media could not be probed again".into())
}

fn probe(
    hint: &Hint,
    stream: MediaSourceStream<'static>,
) -> Result<Box<dyn FormatReader>, SymError> {
    symphonia::default::get_probe().probe(
        hint,
        stream,
        FormatOptions::default(),
        MetadataOptions::default(),
    )
}

fn probe_error(e: SymError) -> AudioError {
    match e {
        SymError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            AudioError::Unsupported("the media is empty or too short to probe".into())
        }
        SymError::IoError(e) => AudioError::Io(format!("reading the media: {e}")),
        SymError::Unsupported(_) => {
            AudioError::Unsupported("unknown or unsupported media format".into())
        }
        other => AudioError::Decode(format!("cannot read the media container: {other}")),
    }
}

fn pick_track(
    format: &dyn FormatReader,
) -> Result<(u32, AudioCodecParameters, Option<TimeBase>), AudioError> {
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Unsupported("the media has no audio track".into()))?;
    let Some(CodecParameters::Audio(params)) = &track.codec_params else {
        return Err(AudioError::Unsupported(
            "the audio track's codec is unknown".into(),
        ));
    };
    Ok((track.id, params.clone(), track.time_base))
}

fn make_decoder(params: &AudioCodecParameters) -> Result<Box<dyn AudioDecoder>, AudioError> {
    CODECS
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| AudioError::Unsupported(format!("unsupported audio codec: {e}")))
}
