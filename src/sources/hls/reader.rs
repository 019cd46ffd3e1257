//! The HLS reader: the segments of a media playlist joined into one byte stream for the
//! demuxer, through the same bounded window as the HTTP reader (blocking `Read` with the read
//! timeout, readiness, notify). A background task fetches the segments in order (each with
//! retries) while the window has room; for a live playlist it reloads the playlist as it runs
//! out of segments, about once per target duration, and goes on with the new ones.
//!
//! Seeking: inside the window, or forward (the bytes are fetched and passed over), is cheap.
//! Backward past the window, in a VOD stream, restarts at the segment whose bytes hold the
//! target: the reader remembers where each segment it delivered began in the joined stream.
//! The demuxer finds times itself (ADTS by counting frames from the start, fMP4 by its
//! fragments), so a time seek reads the segments before the target once.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::Url;
use symphonia::core::io::MediaSource;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::playlist::{MediaPlaylist, Parsed};
use super::segment::{self, Kind};
use super::{GetError, HlsContext, MAX_PLAYLIST_BYTES, MAX_SEGMENT_BYTES, get};
use crate::sources::window::{End, Window};
use crate::sources::{MediaReader, Notify, Readiness, ReadinessHandle};

/// Bytes kept behind the read position for the demuxer's short seeks back.
const BACK_KEEP: usize = 256 * 1024;
/// Playlist reloads in a row that bring nothing new before a live stream is taken as ended.
const MAX_IDLE_RELOADS: u32 = 12;
/// Failed playlist reloads in a row before a live stream is given up.
const MAX_RELOAD_FAILURES: u32 = 5;

/// What the reader and its fetcher share.
struct Stream {
    ctx: HlsContext,
    /// The media playlist (reloaded when live).
    url: Url,
    kind: Kind,
    /// The fMP4 initialisation section, sent once at the start of the joined stream.
    init: Option<Vec<u8>>,
    live: bool,
    playlist: Mutex<MediaPlaylist>,
    /// `(media sequence, offset in the joined stream)` of each segment delivered, in order.
    starts: Mutex<Vec<(u64, u64)>>,
}

pub struct HlsReader {
    window: Arc<Window>,
    stream: Arc<Stream>,
    runtime: Handle,
    fetcher: JoinHandle<()>,
}

impl HlsReader {
    /// Starts joining the segments of `playlist` from sequence number `first_sequence`, whose
    /// bytes (as the stream carries them, without the init section) are `first`. Must be called
    /// within a tokio runtime.
    pub fn start(
        ctx: HlsContext,
        url: Url,
        playlist: MediaPlaylist,
        kind: Kind,
        init: Option<Vec<u8>>,
        first_sequence: u64,
        first: Vec<u8>,
    ) -> HlsReader {
        let window = Window::new(ctx.read_ahead.max(64 * 1024), BACK_KEEP, None);
        let stream = Arc::new(Stream {
            ctx,
            url,
            kind,
            init,
            live: !playlist.ended,
            playlist: Mutex::new(playlist),
            starts: Mutex::new(Vec::new()),
        });
        let runtime = Handle::current();
        let fetcher = runtime.spawn(run_fetcher(
            window.clone(),
            stream.clone(),
            0,
            first_sequence,
            0,
            Some(first),
        ));
        HlsReader {
            window,
            stream,
            runtime,
            fetcher,
        }
    }
}

impl Drop for HlsReader {
    fn drop(&mut self) {
        self.fetcher.abort();
    }
}

impl Read for HlsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // A segment may take a while to arrive whole: allow a few read timeouts' worth.
        self.window.read(out, self.stream.ctx.read_timeout * 3)
    }
}

impl Seek for HlsReader {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        let window = self.window.clone();
        let mut st = window.state.lock();
        let target = match from {
            SeekFrom::Start(n) => n,
            SeekFrom::Current(delta) => st.pos.checked_add_signed(delta).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "seek to a negative position")
            })?,
            SeekFrom::End(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the length of an HLS stream is not known in bytes",
                ));
            }
        };
        if target >= st.buf_start {
            // In the window, or ahead of it: the fetcher brings the bytes.
            st.pos = target;
        } else {
            if self.stream.live {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a live HLS stream cannot seek back",
                ));
            }
            let (sequence, offset) = self
                .stream
                .starts
                .lock()
                .iter()
                .rev()
                .find(|(_, offset)| *offset <= target)
                .copied()
                .unwrap_or((0, 0));
            st.generation += 1;
            self.fetcher.abort();
            st.buf.clear();
            st.stash = None;
            st.buf_start = offset;
            st.pos = target;
            st.end = End::Open;
            self.fetcher = self.runtime.spawn(run_fetcher(
                self.window.clone(),
                self.stream.clone(),
                st.generation,
                sequence,
                offset,
                None,
            ));
        }
        drop(st);
        self.window.moved();
        Ok(target)
    }
}

impl MediaSource for HlsReader {
    fn is_seekable(&self) -> bool {
        // fMP4 is read as a stream (its demuxer would otherwise ask for the length).
        !self.stream.live && self.stream.kind != Kind::Fmp4
    }

    fn byte_len(&self) -> Option<u64> {
        None
    }
}

impl MediaReader for HlsReader {
    fn readiness(&self) -> Readiness {
        self.window.readiness()
    }

    fn set_notify(&mut self, notify: Notify) {
        self.window.set_notify(notify);
    }

    fn readiness_handle(&self) -> ReadinessHandle {
        self.window.readiness_handle()
    }
}

/// Fetches segments from `sequence` on, their bytes starting at `offset` of the joined stream.
/// `first`: that segment's bytes, already fetched.
async fn run_fetcher(
    window: Arc<Window>,
    stream: Arc<Stream>,
    generation: u64,
    mut sequence: u64,
    mut offset: u64,
    mut first: Option<Vec<u8>>,
) {
    let mut idle_reloads = 0u32;
    let mut reload_failures = 0u32;
    loop {
        if !window.wait_for_room(generation, window.read_ahead).await {
            return;
        }
        let next = {
            let playlist = stream.playlist.lock();
            playlist
                .segments
                .iter()
                .find(|s| s.sequence >= sequence)
                .cloned()
                .map(|s| (s, playlist.ended))
        };
        let Some((segment, _)) = next else {
            if !stream.live || stream.playlist.lock().ended {
                window.finish(generation, End::Eof);
                return;
            }
            match reload(&stream).await {
                Ok(true) => {
                    idle_reloads = 0;
                    reload_failures = 0;
                }
                Ok(false) => {
                    idle_reloads += 1;
                    reload_failures = 0;
                    if idle_reloads > MAX_IDLE_RELOADS {
                        tracing::debug!(url = %stream.url, "the live HLS stream stopped growing");
                        window.finish(generation, End::Eof);
                        return;
                    }
                }
                Err(e) => {
                    reload_failures += 1;
                    if reload_failures > MAX_RELOAD_FAILURES {
                        window.finish(
                            generation,
                            End::Failed(
                                io::ErrorKind::ConnectionAborted,
                                format!("reloading the HLS playlist failed: {e}"),
                            ),
                        );
                        return;
                    }
                }
            }
            continue;
        };
        if segment.sequence > sequence && sequence > 0 {
            tracing::debug!(
                url = %stream.url,
                from = sequence,
                to = segment.sequence,
                "live HLS segments went by unfetched"
            );
        }
        let bytes = match first.take() {
            Some(bytes) => Ok(bytes),
            None => fetch_segment(&stream, &segment).await,
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(e) if stream.live => {
                // A live segment that cannot be had is passed over.
                tracing::debug!(url = %segment.url, "skipping a live HLS segment: {e}");
                sequence = segment.sequence + 1;
                continue;
            }
            Err(e) => {
                window.finish(
                    generation,
                    End::Failed(
                        io::ErrorKind::ConnectionAborted,
                        format!("HLS segment {}: {e}", segment.url),
                    ),
                );
                return;
            }
        };
        {
            let mut starts = stream.starts.lock();
            if starts.last().is_none_or(|(s, _)| *s < segment.sequence) {
                starts.push((segment.sequence, offset));
            }
        }
        if offset == 0
            && let Some(init) = &stream.init
        {
            if !window.append_all(generation, init).await {
                return;
            }
            offset += init.len() as u64;
        }
        if !window.append_all(generation, &bytes).await {
            return;
        }
        offset += bytes.len() as u64;
        sequence = segment.sequence + 1;
    }
}

/// One segment's bytes as the joined stream carries them.
async fn fetch_segment(stream: &Stream, segment: &super::Segment) -> Result<Vec<u8>, String> {
    let (_, bytes) = get(&stream.ctx, &segment.url, segment.range, MAX_SEGMENT_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    segment::output(stream.kind, &bytes)
}

/// Reloads a live playlist after waiting about a target duration; true when it brought new
/// segments.
async fn reload(stream: &Stream) -> Result<bool, GetError> {
    let (wait, last) = {
        let playlist = stream.playlist.lock();
        let last = playlist.segments.last().map(|s| s.sequence);
        // Half a target duration when the last reload brought nothing (RFC 8216 §6.3.4).
        (
            Duration::from_secs_f64(playlist.target_duration / 2.0),
            last,
        )
    };
    tokio::time::sleep(wait).await;
    let (url, bytes) = get(&stream.ctx, &stream.url, None, MAX_PLAYLIST_BYTES).await?;
    let text = String::from_utf8_lossy(&bytes);
    match super::playlist::parse(&url, &text) {
        Ok(Parsed::Media(media)) => {
            let grew = media.segments.last().map(|s| s.sequence) > last || media.ended;
            *stream.playlist.lock() = media;
            Ok(grew)
        }
        Ok(Parsed::Master(_)) => Err(GetError::Failed(
            "the media playlist became a master playlist".into(),
        )),
        Err(e) => Err(GetError::Failed(e)),
    }
}
