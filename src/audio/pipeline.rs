//! One track's audio path: demux → decode → stereo → resample to 48 kHz → filters → player
//! volume → Opus, one 20 ms frame per call, or Opus passthrough (see [`super::passthrough`]).
//!
//! The stages live in their own modules ([`super::decode`], [`super::downmix`],
//! [`super::resample`], [`super::encode`]); this one moves audio between them through reused
//! FIFOs, keeps the source position, and applies the player's controls per frame.
//!
//! `open` and `seek` block (they read); `next_frame` reads only once `is_ready` says a frame
//! can be made from what is buffered, and allocates nothing once warmed up (symphonia's
//! demuxers hand each packet over in a buffer of its own; that is theirs).

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::decode::{READ_CHUNK, SeekOutcome, SourceDecoder};
use super::encode::FrameEncoder;
use super::fifo::StereoFifo;
use super::filters::FilterChain;
use super::passthrough::{self, Mode, PRIME_PACKETS, Passthrough};
use super::resample::{FRAME_SAMPLES, OUTPUT_RATE, Resampler48k};
use crate::config::ResamplingQuality;
use crate::protocol::filters::Filters;
use crate::sources::{OpenedMedia, ReadinessHandle};
use crate::voice::MAX_OPUS_PACKET;

/// Source bytes the reader must hold for one frame to be made without blocking, at the least:
/// several packets of any usual codec and two of the demuxer's reads. Each track learns its
/// own need (the most bytes one frame took from the reader, plus a read), up to
/// [`MAX_NEED_BYTES`].
///
/// The need is kept small on purpose: a live stream (internet radio, a slow server) comes at
/// real time, so once playing, what is buffered stays about what there was at the start;
/// asking for more than that would stall a stream that keeps up perfectly.
const MIN_NEED_BYTES: usize = 8 * 1024;

/// The learned need is capped here (what a rare huge packet needs beyond it may block the
/// worker briefly). Twice this, the start level, stays well under the smallest read-ahead
/// window (64 KiB), so a stream can always start.
const MAX_NEED_BYTES: usize = 24 * 1024;

/// Milliseconds of one frame.
const FRAME_MS: f64 = 20.0;

/// Node-wide encoder/resampler settings.
#[derive(Debug, Clone, Copy)]
pub struct PipelineSettings {
    /// Opus complexity 0..=10 (`opusEncodingQuality`).
    pub opus_complexity: u8,
    pub resampling: ResamplingQuality,
}

/// The player's controls as the pipeline reads them for each frame.
pub struct Controls<'a> {
    /// Player volume 0..=1000 (100 = unity).
    pub volume: i32,
    /// Bumped whenever `filters` changes.
    pub filters_version: u64,
    pub filters: &'a ArcSwap<Filters>,
    /// End the track when the position reaches this (ms); `i64::MAX` = none.
    pub end_time_ms: i64,
}

/// One produced 20 ms frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedFrame {
    /// Bytes of the Opus packet written to the output buffer.
    pub len: usize,
    /// Source position in ms at the end of this frame.
    pub end_position_ms: i64,
}

/// Why audio could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Decode(String),
    #[error("{0}")]
    Io(String),
}

/// A track being played.
pub struct TrackPipeline {
    // Boxed: the state is large and the handle moves between threads and queues.
    state: Box<State>,
}

impl TrackPipeline {
    /// Probes the media, builds the decoder and seeks to `start_position_ms`. Blocking (may
    /// read from the network): call off the async threads and off the worker pool.
    /// `notify` is called whenever the source gets new bytes (re-schedules the player).
    pub fn open(
        media: OpenedMedia,
        settings: &PipelineSettings,
        start_position_ms: i64,
        notify: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<TrackPipeline, AudioError> {
        let state = State::open(media, settings, start_position_ms, notify)?;
        Ok(TrackPipeline {
            state: Box::new(state),
        })
    }

    /// Whether the media can seek (files, HTTP with ranges); streams cannot.
    pub fn is_seekable(&self) -> bool {
        self.state.seekable
    }

    /// Seeks to `position_ms` (accurate to the sample when transcoding, to the packet when
    /// passing through); returns the position reached. Blocking. A position past the end
    /// ends the track at the next frame. Fails, changing nothing, on media that cannot seek.
    pub fn seek(&mut self, position_ms: i64) -> Result<i64, AudioError> {
        self.state.seek(position_ms)
    }

    /// Whether `next_frame` can run without blocking on the source.
    ///
    /// `starved`: nothing of this track waits to be sent (its start, right after a seek, or an
    /// underrun). Then twice the usual bytes are asked for: playback (re)starts with a cushion
    /// that covers what the demuxer holds unseen (see `decode::READ_CHUNK`) and what is decoded
    /// ahead, so a stream that then arrives at exactly real time never falls short of the
    /// usual need and plays on without a gap.
    pub fn is_ready(&self, starved: bool) -> bool {
        self.state.is_ready(starved)
    }

    /// Produces the next 20 ms frame into `out`; `Ok(None)` at the end of the track.
    pub fn next_frame(
        &mut self,
        controls: &Controls,
        out: &mut [u8; MAX_OPUS_PACKET],
    ) -> Result<Option<ProducedFrame>, AudioError> {
        self.state.next_frame(controls, out)
    }
}

/// Everything a track's pipeline holds.
struct State {
    decoder: SourceDecoder,
    readiness: ReadinessHandle,
    seekable: bool,
    resampling: ResamplingQuality,
    /// Present once a source rate other than 48 kHz has been seen.
    resampler: Option<Resampler48k>,
    /// 48 kHz stereo waiting for the filters or the encoder.
    pcm: StereoFifo,
    /// Filter output waiting for the encoder.
    filtered: StereoFifo,
    /// Scratch output of one filter call.
    filter_out: Vec<f32>,
    chain: FilterChain,
    filters_version: Option<u64>,
    filters_active: bool,
    encoder: FrameEncoder,
    /// The next encoded frames only prime the encoder and are dropped.
    prime_frames: usize,
    passthrough: Option<Passthrough>,
    /// After a seek: decoded audio before this timestamp (track time base) is dropped.
    skip_until_ts: Option<i64>,
    /// Source position (ms) at the end of the last frame produced.
    position_ms: f64,
    /// The source has no more packets.
    eof: bool,
    /// The resampler's and encoder's tails have been pushed after `eof`.
    flushed: bool,
    /// Any audio was decoded since the last (re)start.
    audio_seen: bool,
    /// Bytes the reader must hold before a frame is made (see [`MIN_NEED_BYTES`]).
    need_bytes: usize,
}

impl State {
    /// See [`TrackPipeline::open`].
    fn open(
        media: OpenedMedia,
        settings: &PipelineSettings,
        start_position_ms: i64,
        notify: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<State, AudioError> {
        let OpenedMedia {
            mut reader,
            extension,
            mime,
            seekable,
            container: _,
        } = media;
        let readiness = reader.readiness_handle();
        reader.set_notify(notify);
        let decoder = SourceDecoder::open(reader, extension.as_deref(), mime.as_deref())?;
        let encoder = FrameEncoder::new(settings.opus_complexity)?;
        let passthrough = passthrough::source_qualifies(
            decoder.is_opus(),
            decoder.declared_channels(),
            decoder.declared_rate(),
        )
        .then(Passthrough::new);
        let resampler = match decoder.declared_rate() {
            Some(rate) if rate != OUTPUT_RATE && rate > 0 => {
                Some(Resampler48k::new(rate, settings.resampling)?)
            }
            _ => None,
        };
        let mut pipeline = State {
            decoder,
            readiness,
            seekable,
            resampling: settings.resampling,
            resampler,
            pcm: StereoFifo::with_capacity(16 * 1024),
            filtered: StereoFifo::with_capacity(4 * 1024),
            filter_out: Vec::with_capacity(8 * 1024),
            chain: FilterChain::new(&Filters::default()),
            filters_version: None,
            filters_active: false,
            encoder,
            prime_frames: 0,
            passthrough,
            skip_until_ts: None,
            position_ms: 0.0,
            eof: false,
            flushed: false,
            audio_seen: false,
            need_bytes: MIN_NEED_BYTES,
        };
        pipeline.restart(0)?;
        if start_position_ms > 0 && seekable {
            pipeline.seek(start_position_ms)?;
        }
        Ok(pipeline)
    }

    /// See [`TrackPipeline::seek`].
    fn seek(&mut self, position_ms: i64) -> Result<i64, AudioError> {
        if !self.seekable {
            return Err(AudioError::Unsupported("the stream cannot seek".into()));
        }
        let position_ms = position_ms.max(0);
        let outcome = self.decoder.seek(position_ms)?;
        self.restart(position_ms)?;
        match outcome {
            SeekOutcome::At { required } => self.skip_until_ts = Some(required),
            SeekOutcome::PastEnd => self.eof = true,
        }
        Ok(position_ms)
    }

    /// See [`TrackPipeline::is_ready`]: a frame's worth of audio is decoded already, or the
    /// reader holds enough bytes (or all of them).
    fn is_ready(&self, starved: bool) -> bool {
        if self.eof || self.frame_decoded() {
            return true;
        }
        let want = if starved {
            2 * self.need_bytes
        } else {
            self.need_bytes
        };
        let r = self.readiness.get();
        r.finished || r.buffered >= want
    }

    /// Whether the next frame can be made from audio decoded already. Not while the encoder is
    /// primed (after a start or a seek the FIFO holds silence whose frames are dropped, and
    /// the frame after them needs the source) nor while Opus packets are passed through.
    fn frame_decoded(&self) -> bool {
        if self.prime_frames > 0
            || self
                .passthrough
                .as_ref()
                .is_some_and(|pt| pt.mode == Mode::Packets)
        {
            return false;
        }
        let fifo = if self.filters_active {
            &self.filtered
        } else {
            &self.pcm
        };
        fifo.frames() >= FRAME_SAMPLES
    }

    /// See [`TrackPipeline::next_frame`]; learns how many bytes a frame takes.
    fn next_frame(
        &mut self,
        controls: &Controls,
        out: &mut [u8; MAX_OPUS_PACKET],
    ) -> Result<Option<ProducedFrame>, AudioError> {
        let before = self.decoder.bytes_pulled();
        let frame = self.produce_frame(controls, out);
        let pulled = self.decoder.bytes_pulled().saturating_sub(before) as usize;
        self.need_bytes = self
            .need_bytes
            .max((pulled + READ_CHUNK).min(MAX_NEED_BYTES));
        frame
    }

    fn produce_frame(
        &mut self,
        controls: &Controls,
        out: &mut [u8; MAX_OPUS_PACKET],
    ) -> Result<Option<ProducedFrame>, AudioError> {
        if self.position_ms >= controls.end_time_ms as f64 {
            return Ok(None);
        }
        self.sync_filters(controls);
        if self.passthrough.is_some() {
            let want = controls.volume == 100 && !self.filters_active;
            match self.passthrough_step(want, out)? {
                Step::Frame(frame) => return Ok(Some(frame)),
                Step::End => return Ok(None),
                Step::Transcode => {}
            }
        }
        self.transcode_frame(controls, out)
    }

    // -- passthrough ---------------------------------------------------------------------------

    fn passthrough_step(
        &mut self,
        want: bool,
        out: &mut [u8; MAX_OPUS_PACKET],
    ) -> Result<Step, AudioError> {
        let pt = self.passthrough.as_mut().expect("checked by the caller");
        if pt.mode == Mode::Transcode {
            if !want || self.eof || self.prime_frames > 0 {
                return Ok(Step::Transcode);
            }
            let lookahead = self.encoder.lookahead();
            let in_step = pt.aligned
                && self.filtered.is_empty()
                && self.pcm.frames() == FRAME_SAMPLES - lookahead;
            self.pcm.clear();
            self.filtered.clear();
            pt.mode = Mode::Packets;
            if in_step && let Some(packet) = pt.last_frame_packet() {
                // The encoder has emitted everything before this packet: it goes next.
                let len = packet.data.len().min(MAX_OPUS_PACKET);
                out[..len].copy_from_slice(&packet.data[..len]);
                return Ok(Step::Frame(self.advance(FRAME_MS, len)));
            }
            // Out of step (after a tempo change or a seek): resume at the next packet.
        }
        if !want {
            self.enter_transcode(None)?;
            return Ok(Step::Transcode);
        }
        loop {
            let Some(packet) = self.decoder.next_packet()? else {
                self.eof = true;
                return Ok(Step::End);
            };
            let container = self.decoder.packet_frames(&packet, OUTPUT_RATE);
            let is_frame = passthrough::is_frame_packet(&packet.data, container);
            if let Some(required) = self.skip_until_ts {
                let start = self.decoder.packet_start_frame(&packet, OUTPUT_RATE);
                let frames = passthrough::opus_packet_samples(&packet.data).unwrap_or(0) as i64;
                let end = start + frames.max(container);
                if end <= self.decoder.ts_to_frames(required, OUTPUT_RATE) {
                    self.pt().remember(packet, is_frame);
                    continue;
                }
                self.skip_until_ts = None;
            }
            if !is_frame || packet.data.len() > MAX_OPUS_PACKET {
                self.enter_transcode(Some(packet))?;
                return Ok(Step::Transcode);
            }
            let len = packet.data.len();
            out[..len].copy_from_slice(&packet.data);
            self.pt().remember(packet, true);
            return Ok(Step::Frame(self.advance(FRAME_MS, len)));
        }
    }

    /// Leaves passthrough: primes the decoder with the last packets sent and the encoder with
    /// their audio from `lookahead` samples in (its first frames are dropped), then decodes
    /// `pending` (the packet that could not be passed, if any).
    fn enter_transcode(
        &mut self,
        pending: Option<symphonia::core::packet::Packet>,
    ) -> Result<(), AudioError> {
        let lookahead = self.encoder.lookahead();
        let prefix = PRIME_PACKETS * FRAME_SAMPLES - lookahead;
        self.decoder.reset_decoder();
        self.pcm.clear();
        self.filtered.clear();
        self.encoder.reset()?;
        self.prime_frames = PRIME_PACKETS;
        let history = self
            .passthrough
            .as_mut()
            .expect("passthrough state")
            .frame_history_len();
        // The oldest packet (when there are more than the priming ones) only warms the decoder.
        let warm_up = history.saturating_sub(PRIME_PACKETS);
        // Missing history is silence.
        self.pcm
            .push_silence((PRIME_PACKETS - (history - warm_up)) * FRAME_SAMPLES);
        let mut primed = true;
        for i in 0..history {
            let Some(packet) = self.passthrough.as_mut().and_then(Passthrough::pop_oldest) else {
                break;
            };
            match self.decoder.decode(&packet)? {
                Some(_) if i < warm_up => {}
                Some(audio) if audio.rate() == OUTPUT_RATE => {
                    // Pre-skip may have been cut from a first decode: pad back to packet size.
                    let frames = audio.frames().min(FRAME_SAMPLES);
                    let pad = if audio.first_decode() {
                        FRAME_SAMPLES - frames
                    } else {
                        0
                    };
                    if pad + frames != FRAME_SAMPLES {
                        primed = false;
                        break;
                    }
                    self.pcm.push_silence(pad);
                    audio.mix_into(audio.frames() - frames, self.pcm.tail_mut(frames));
                }
                _ => {
                    primed = false;
                    break;
                }
            }
        }
        if primed {
            // Start `lookahead` samples into the primed audio.
            self.pcm.consume(self.pcm.frames() - prefix);
        } else {
            self.pcm.clear();
            self.pcm.push_silence(prefix);
        }
        let pt = self.pt();
        pt.mode = Mode::Transcode;
        pt.aligned = true;
        if let Some(packet) = pending {
            self.decode_packet(packet)?;
        }
        Ok(())
    }

    fn pt(&mut self) -> &mut Passthrough {
        self.passthrough.as_mut().expect("passthrough state")
    }

    // -- transcode -----------------------------------------------------------------------------

    fn transcode_frame(
        &mut self,
        controls: &Controls,
        out: &mut [u8; MAX_OPUS_PACKET],
    ) -> Result<Option<ProducedFrame>, AudioError> {
        loop {
            let source = if self.filters_active {
                self.fill_filtered()?;
                &mut self.filtered
            } else {
                if !self.filtered.is_empty() {
                    // Filters just went off: their output plays first.
                    self.pcm.prepend(self.filtered.samples());
                    self.filtered.clear();
                    if let Some(pt) = self.passthrough.as_mut() {
                        pt.aligned = false;
                    }
                }
                self.fill_pcm(FRAME_SAMPLES)?;
                &mut self.pcm
            };
            if source.is_empty() || (self.eof && !self.audio_seen) {
                return Ok(None);
            }
            let have = source.frames();
            if have < FRAME_SAMPLES {
                source.push_silence(FRAME_SAMPLES - have);
            }
            let len =
                self.encoder
                    .encode(source.head(FRAME_SAMPLES), controls.volume, &mut out[..])?;
            source.consume(FRAME_SAMPLES);
            if self.prime_frames > 0 {
                self.prime_frames -= 1;
                continue;
            }
            let ratio = if self.filters_active {
                self.chain.time_ratio()
            } else {
                1.0
            };
            return Ok(Some(self.advance(FRAME_MS * ratio, len)));
        }
    }

    /// Runs the filter chain until a frame of its output is waiting (or the source ended).
    fn fill_filtered(&mut self) -> Result<(), AudioError> {
        let mut rounds = 0;
        while self.filtered.frames() < FRAME_SAMPLES && rounds < 64 {
            rounds += 1;
            self.fill_pcm(FRAME_SAMPLES)?;
            if self.pcm.is_empty() {
                break;
            }
            let n = self.pcm.frames().min(FRAME_SAMPLES);
            self.filter_out.clear();
            self.chain.process(self.pcm.head(n), &mut self.filter_out);
            self.pcm.consume(n);
            let whole = self.filter_out.len() & !1;
            self.filtered.push(&self.filter_out[..whole]);
        }
        Ok(())
    }

    /// Decodes until `frames` frames of 48 kHz audio wait in `pcm` or the source ends.
    fn fill_pcm(&mut self, frames: usize) -> Result<(), AudioError> {
        while self.pcm.frames() < frames {
            if self.eof {
                if !self.flushed {
                    self.flushed = true;
                    if let Some(r) = self.resampler.as_mut() {
                        r.finish(&mut self.pcm)?;
                    }
                    if self.audio_seen {
                        // Push the encoder's lookahead out with the last real samples.
                        self.pcm.push_silence(self.encoder.lookahead());
                    }
                }
                return Ok(());
            }
            match self.decoder.next_packet()? {
                Some(packet) => self.decode_packet(packet)?,
                None => self.eof = true,
            }
        }
        Ok(())
    }

    /// Decodes one packet into `pcm` (through the resampler unless it is at 48 kHz), dropping
    /// audio before a seek target.
    fn decode_packet(&mut self, packet: symphonia::core::packet::Packet) -> Result<(), AudioError> {
        let qualifies = self.passthrough.is_some();
        let Some(audio) = self.decoder.decode(&packet)? else {
            if let Some(pt) = self.passthrough.as_mut() {
                pt.aligned = false;
                pt.remember(packet, false);
            }
            return Ok(());
        };
        let rate = audio.rate();
        let frames = audio.frames();
        let mut skip = 0;
        if let Some(required) = self.skip_until_ts {
            let required = audio.ts_to_frames(required, rate);
            let start = audio.packet_start_frame(&packet, rate);
            if start + frames as i64 <= required {
                skip = frames;
            } else {
                skip = (required - start).clamp(0, frames as i64) as usize;
                self.skip_until_ts = None;
            }
        }
        let mut pad = 0;
        let full = if qualifies {
            passthrough::opus_packet_samples(&packet.data).unwrap_or(frames)
        } else {
            frames
        };
        if qualifies && audio.first_decode() && skip == 0 {
            // The stream's pre-skip was cut from this first packet; keep packets whole so the
            // decoded timeline stays in step with the packets (see `passthrough`).
            pad = full.saturating_sub(frames);
        }
        let kept = frames - skip;
        if kept > 0 {
            self.audio_seen = true;
        }
        if rate == OUTPUT_RATE {
            self.pcm.push_silence(pad);
            audio.mix_into(skip, self.pcm.tail_mut(kept));
        } else if rate > 0 {
            if self.resampler.as_ref().is_none_or(|r| r.rate() != rate) {
                self.resampler = Some(Resampler48k::new(rate, self.resampling)?);
            }
            let r = self.resampler.as_mut().expect("set above");
            audio.mix_into(skip, r.input_tail(kept));
            r.process(&mut self.pcm)?;
        }
        let in_step = skip == 0 && pad + kept == FRAME_SAMPLES && rate == OUTPUT_RATE;
        if let Some(pt) = self.passthrough.as_mut() {
            let container = self.decoder.packet_frames(&packet, OUTPUT_RATE);
            let is_frame = passthrough::is_frame_packet(&packet.data, container);
            pt.aligned &= in_step && is_frame;
            pt.remember(packet, is_frame);
        }
        Ok(())
    }

    // -- common --------------------------------------------------------------------------------

    /// Empties every buffer and primes the encoder for audio starting at `position_ms`.
    fn restart(&mut self, position_ms: i64) -> Result<(), AudioError> {
        if let Some(r) = self.resampler.as_mut() {
            r.reset();
        }
        self.pcm.clear();
        self.filtered.clear();
        self.chain.reset();
        self.encoder.reset()?;
        // The encoder's first frames are dropped: they hold silence and `lookahead` samples of
        // the audio, so the next frame starts exactly at `position_ms`.
        self.pcm
            .push_silence(PRIME_PACKETS * FRAME_SAMPLES - self.encoder.lookahead());
        self.prime_frames = PRIME_PACKETS;
        if let Some(pt) = self.passthrough.as_mut() {
            pt.reset();
            pt.aligned = true;
        }
        self.skip_until_ts = self.decoder.start_skip_ts();
        self.position_ms = position_ms as f64;
        self.eof = false;
        self.flushed = false;
        self.audio_seen = false;
        Ok(())
    }

    fn sync_filters(&mut self, controls: &Controls) {
        if self.filters_version == Some(controls.filters_version) {
            return;
        }
        self.filters_version = Some(controls.filters_version);
        let filters = controls.filters.load();
        self.chain.update(&filters);
        self.filters_active = self.chain.is_active();
    }

    fn advance(&mut self, ms: f64, len: usize) -> ProducedFrame {
        self.position_ms += ms;
        ProducedFrame {
            len,
            end_position_ms: self.position_ms.round() as i64,
        }
    }
}

/// What the passthrough side decided for this frame.
enum Step {
    Frame(ProducedFrame),
    End,
    Transcode,
}
