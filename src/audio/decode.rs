//! Demux and decode with symphonia: probing the container, picking the audio track, reading
//! its packets, decoding them to interleaved stereo at the source rate, seeking, and the error
//! policy (a corrupt packet is skipped while the codec can resync; a run of failures, or a
//! container that cannot go on, is fatal; the end of the bytes is the end of the track).
//!
//! Opus is decoded by libopus through `symphonia-adapter-libopus`, registered next to
//! symphonia's own decoders.

use std::io::ErrorKind;
use std::sync::LazyLock;

use symphonia::core::audio::{Channels, GenericAudioBufferRef};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
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

/// Consecutive undecodable packets (or demuxer errors) after which the track is given up.
pub(crate) const MAX_CONSECUTIVE_ERRORS: u32 = 32;

/// symphonia's decoders plus libopus for Opus.
static CODECS: LazyLock<CodecRegistry> = LazyLock::new(|| {
    let mut registry = CodecRegistry::new();
    symphonia::default::register_enabled_codecs(&mut registry);
    registry.register_audio_decoder::<symphonia_adapter_libopus::OpusDecoder>();
    registry
});

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
        packet_start_frame(self.time_base, packet, rate)
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
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    params: AudioCodecParameters,
    time_base: Option<TimeBase>,
    /// The conversion for the layout last decoded.
    downmix: Option<(Channels, Downmix)>,
    consecutive_errors: u32,
    /// Successful decodes since the decoder was created (not reset).
    decodes_since_create: u64,
}

impl SourceDecoder {
    /// Probes the media (blocking reads) and builds the decoder of its default audio track.
    pub(crate) fn open(
        reader: Box<dyn MediaReader>,
        extension: Option<&str>,
        mime: Option<&str>,
    ) -> Result<SourceDecoder, AudioError> {
        let source: Box<dyn MediaSource> = reader;
        let stream = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        if let Some(ext) = extension.filter(|e| !e.is_empty()) {
            hint.with_extension(ext);
        }
        if let Some(mime) = mime.filter(|m| !m.is_empty()) {
            hint.mime_type(mime);
        }
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                stream,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    AudioError::Unsupported("the media is empty or too short to probe".into())
                }
                SymError::IoError(e) => AudioError::Io(format!("reading the media: {e}")),
                SymError::Unsupported(_) => {
                    AudioError::Unsupported("unknown or unsupported media format".into())
                }
                other => AudioError::Decode(format!("cannot read the media container: {other}")),
            })?;
        let (track_id, params, time_base) = pick_track(format.as_ref())?;
        let decoder = make_decoder(&params)?;
        Ok(SourceDecoder {
            format,
            decoder,
            track_id,
            params,
            time_base,
            downmix: None,
            consecutive_errors: 0,
            decodes_since_create: 0,
        })
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
            match self.format.next_packet() {
                Ok(Some(p)) if p.track_id == self.track_id => return Ok(Some(p)),
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(None),
                Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                    return Ok(None);
                }
                Err(SymError::IoError(e)) => {
                    return Err(AudioError::Io(format!("reading the media: {e}")));
                }
                Err(SymError::ResetRequired) => {
                    // A new logical stream (chained Ogg and the like): new track, new decoder.
                    let (track_id, params, time_base) = pick_track(self.format.as_ref())?;
                    self.decoder = make_decoder(&params)?;
                    self.track_id = track_id;
                    self.params = params;
                    self.time_base = time_base;
                    self.decodes_since_create = 0;
                }
                Err(SymError::DecodeError(msg)) => {
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
            first: self.decodes_since_create == 1,
        }))
    }

    /// Forgets decoder state (the next packet is not the one after the last decoded).
    pub(crate) fn reset_decoder(&mut self) {
        self.decoder.reset();
    }

    /// Seeks so that the next packets start at or before `position_ms`; resets the decoder.
    pub(crate) fn seek(&mut self, position_ms: i64) -> Result<SeekOutcome, AudioError> {
        let to = SeekTo::Time {
            time: Time::from_millis(position_ms.max(0)),
            track_id: Some(self.track_id),
        };
        let result = self.format.seek(SeekMode::Accurate, to);
        self.decoder.reset();
        self.consecutive_errors = 0;
        match result {
            Ok(seeked) => Ok(SeekOutcome::At {
                required: seeked.required_ts.get(),
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

    /// A timestamp of this track as a frame index at `rate`.
    pub(crate) fn ts_to_frames(&self, ts: i64, rate: u32) -> i64 {
        ts_to_frames(self.time_base, ts, rate)
    }

    /// First decoded frame of `packet` (its timestamp plus any frames trimmed from its start),
    /// as a frame index at `rate`.
    pub(crate) fn packet_start_frame(&self, packet: &Packet, rate: u32) -> i64 {
        packet_start_frame(self.time_base, packet, rate)
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

fn packet_start_frame(time_base: Option<TimeBase>, packet: &Packet, rate: u32) -> i64 {
    ts_to_frames(time_base, packet.pts.get(), rate)
        .saturating_add(i64::try_from(packet.trim_start.get()).unwrap_or(i64::MAX))
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
