//! HLS (`.m3u8`), VOD and live: loading a playlist URL gives one track (probe info
//! `m3u|hls-outer` for a master playlist, `m3u|hls-inner` for a media playlist, as Lavalink
//! writes them); playing it opens an [`reader::HlsReader`] that joins the segments into one
//! stream for the demuxer. A master playlist is seen through to its best audio rendition
//! ([`playlist::choose_audio`]). Segments may be MPEG-TS with ADTS AAC (or MPEG audio), fMP4, or
//! packed ADTS/MP3 ([`segment`]). A VOD playlist (`EXT-X-ENDLIST`) has a length and can seek; a
//! live one is a stream, joined three segments before its end and reloaded as it grows.
//! Encrypted segments are refused.

pub mod playlist;
pub mod reader;
pub mod segment;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{StatusCode, Url};

use crate::protocol::load::Exception;
use crate::protocol::track::{TrackInfo, UNKNOWN_LENGTH};
use crate::protocol::track_codec::SourceDetails;

use self::playlist::{MediaPlaylist, Parsed, Segment};
use self::reader::HlsReader;
use super::http::fetch::{self, fetch};
use super::http::net::Net;
use super::http::{UNKNOWN_ARTIST, UNKNOWN_TITLE};
use super::{OpenedMedia, TrackData, error};

/// Probe info of a track loaded from a master playlist.
pub const PROBE_OUTER: &str = "m3u|hls-outer";
/// Probe info of a track loaded from a media playlist.
pub const PROBE_INNER: &str = "m3u|hls-inner";

/// The largest playlist read.
const MAX_PLAYLIST_BYTES: usize = 4 * 1024 * 1024;
/// The largest segment read.
const MAX_SEGMENT_BYTES: usize = 64 * 1024 * 1024;
/// Tries per segment or playlist request.
const TRIES: u32 = 3;
/// Wait before the first retry; each next one waits twice as long.
const RETRY_BACKOFF: Duration = Duration::from_millis(250);
/// A live stream is joined this many segments before its end (the HLS spec's advice).
const LIVE_START_SEGMENTS: usize = 3;

/// What fetching playlists and segments needs.
#[derive(Clone)]
pub struct HlsContext {
    pub net: Arc<Net>,
    /// Sent with every request (a resolver's User-Agent, Cookie …).
    pub headers: Vec<(String, String)>,
    pub header_timeout: Duration,
    pub read_timeout: Duration,
    /// Bytes kept ahead of the demuxer.
    pub read_ahead: usize,
}

/// Why a resource could not be fetched.
#[derive(Debug)]
pub enum GetError {
    /// The server answered this status (404, 410, …): retrying will not help.
    Status(u16),
    /// Network trouble, a 5xx, a timeout: retried, then given up.
    Failed(String),
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetError::Status(code) => write!(f, "status code {code}"),
            GetError::Failed(why) => f.write_str(why),
        }
    }
}

/// GETs a whole resource (or a byte range of it) with retries: `(final URL, bytes)`.
pub async fn get(
    ctx: &HlsContext,
    url: &Url,
    range: Option<playlist::Range>,
    limit: usize,
) -> Result<(Url, Vec<u8>), GetError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match get_once(ctx, url, range, limit).await {
            Ok(found) => return Ok(found),
            Err(GetError::Status(code))
                if !(code >= 500 || code == StatusCode::TOO_MANY_REQUESTS.as_u16()) =>
            {
                return Err(GetError::Status(code));
            }
            Err(e) if attempt >= TRIES => return Err(e),
            Err(e) => {
                tracing::debug!(%url, attempt, "HLS request failed, retrying: {e}");
                tokio::time::sleep(RETRY_BACKOFF * 2u32.pow(attempt - 1)).await;
            }
        }
    }
}

async fn get_once(
    ctx: &HlsContext,
    url: &Url,
    range: Option<playlist::Range>,
    limit: usize,
) -> Result<(Url, Vec<u8>), GetError> {
    let (start, end) = match range {
        Some((start, len)) => (start, Some(start + len.max(1) - 1)),
        None => (0, None),
    };
    let fetched = fetch(
        &ctx.net,
        url.clone(),
        start,
        end,
        &ctx.headers,
        ctx.header_timeout,
    )
    .await
    .map_err(|e| GetError::Failed(e.to_string()))?;
    let mut response = fetched.response;
    let status = response.status();
    if !status.is_success() {
        return Err(GetError::Status(status.as_u16()));
    }
    // A server that ignored the range sends the whole resource: cut the range out of it.
    let skip = match range {
        Some((start, _)) if status != StatusCode::PARTIAL_CONTENT => start as usize,
        _ => 0,
    };
    let mut body = Vec::new();
    loop {
        match tokio::time::timeout(ctx.read_timeout, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                body.extend_from_slice(&chunk);
                if body.len() > limit.saturating_add(skip) {
                    return Err(GetError::Failed(format!(
                        "{url} is larger than {limit} bytes"
                    )));
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(GetError::Failed(fetch::describe(&e))),
            Err(_) => {
                return Err(GetError::Failed(format!(
                    "no data within {} ms",
                    ctx.read_timeout.as_millis()
                )));
            }
        }
    }
    if let Some((_, len)) = range {
        let len = len as usize;
        if body.len() < skip + len {
            return Err(GetError::Failed(format!(
                "the body ended after {} of {} bytes",
                body.len().saturating_sub(skip),
                len
            )));
        }
        if skip > 0 || body.len() > len {
            body = body[skip..skip + len].to_vec();
        }
    }
    Ok((fetched.url, body))
}

/// Fetches and parses a playlist, following a master playlist to its media playlist:
/// `(media playlist URL, the playlist, whether a master playlist was followed)`.
pub async fn resolve(
    ctx: &HlsContext,
    url: Url,
    text: Option<&str>,
) -> Result<(Url, MediaPlaylist, bool), Exception> {
    let mut url = url;
    let mut outer = false;
    let mut text = text.map(str::to_string);
    for _ in 0..3 {
        let body = match text.take() {
            Some(t) => t,
            None => {
                let (final_url, bytes) = get(ctx, &url, None, MAX_PLAYLIST_BYTES)
                    .await
                    .map_err(|e| playlist_error(&url, &e))?;
                url = final_url;
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        match playlist::parse(&url, &body).map_err(|e| error::unknown_format(&e))? {
            Parsed::Master(media) => {
                outer = true;
                url = media;
            }
            Parsed::Media(media) => {
                if media.encrypted {
                    return Err(error::unsupported_media(
                        "Encrypted HLS streams are not supported.",
                        &format!("{url} has EXT-X-KEY"),
                    ));
                }
                return Ok((url, media, outer));
            }
        }
    }
    Err(error::unknown_format("master playlists nested too deep"))
}

fn playlist_error(url: &Url, e: &GetError) -> Exception {
    match e {
        GetError::Status(code) => {
            error::not_playable(&format!("Status code {code} for the HLS playlist {url}"))
        }
        GetError::Failed(why) => error::connect_failed(&format!("{url}: {why}")),
    }
}

fn segment_error(url: &Url, e: &GetError) -> Exception {
    match e {
        GetError::Status(code) => {
            error::not_playable(&format!("Status code {code} for the HLS segment {url}"))
        }
        GetError::Failed(why) => error::connect_failed(&format!("{url}: {why}")),
    }
}

/// The index of the segment to start from: the first (VOD), or a few before the end (live).
fn start_index(media: &MediaPlaylist) -> usize {
    if media.ended {
        0
    } else {
        media.segments.len().saturating_sub(LIVE_START_SEGMENTS)
    }
}

/// A segment's bytes as the joined stream carries them, and the stream's kind.
async fn first_segment(
    ctx: &HlsContext,
    segment: &Segment,
) -> Result<(segment::Kind, Option<Vec<u8>>, Vec<u8>), Exception> {
    let init = match &segment.init {
        Some(init) => Some(
            get(ctx, &init.url, init.range, MAX_SEGMENT_BYTES)
                .await
                .map_err(|e| segment_error(&init.url, &e))?
                .1,
        ),
        None => None,
    };
    let (_, bytes) = get(ctx, &segment.url, segment.range, MAX_SEGMENT_BYTES)
        .await
        .map_err(|e| segment_error(&segment.url, &e))?;
    let kind = segment::detect(init.as_deref(), &bytes)
        .map_err(|e| error::unsupported_media("This HLS stream has no playable audio.", &e))?;
    let out = segment::output(kind, &bytes)
        .map_err(|e| error::unsupported_media("This HLS stream has no playable audio.", &e))?;
    Ok((kind, init, out))
}

/// `/v4/loadtracks` for an HLS playlist at `url` (its text already read): one track, after a
/// look at the first segment it would play.
pub async fn load(
    ctx: &HlsContext,
    identifier: String,
    url: Url,
    text: &str,
) -> Result<TrackData, Exception> {
    let (_, media, outer) = resolve(ctx, url, Some(text)).await?;
    let Some(first) = media.segments.get(start_index(&media)) else {
        return Err(error::unknown_format("the HLS playlist has no segments"));
    };
    first_segment(ctx, first).await?;
    let length = media
        .ended
        .then(|| i64::try_from(media.duration_ms()).unwrap_or(UNKNOWN_LENGTH));
    let is_stream = length.is_none();
    let info = TrackInfo {
        identifier: identifier.clone(),
        is_seekable: !is_stream,
        author: UNKNOWN_ARTIST.to_string(),
        length: length.unwrap_or(UNKNOWN_LENGTH),
        is_stream,
        position: 0,
        title: UNKNOWN_TITLE.to_string(),
        uri: Some(identifier),
        artwork_url: None,
        isrc: None,
        source_name: super::http::SOURCE_NAME.to_string(),
    };
    let probe = if outer { PROBE_OUTER } else { PROBE_INNER };
    Ok(TrackData {
        info,
        details: SourceDetails::ProbeInfo(probe.to_string()),
    })
}

/// Opens the HLS stream at `url` (a master or media playlist) for playback.
pub async fn open(ctx: &HlsContext, url: Url) -> Result<OpenedMedia, Exception> {
    let (media_url, media, _) = resolve(ctx, url, None).await?;
    let start = start_index(&media);
    let Some(first) = media.segments.get(start).cloned() else {
        return Err(error::unknown_format("the HLS playlist has no segments"));
    };
    let (kind, init, first_out) = first_segment(ctx, &first).await?;
    let live = !media.ended;
    let container = kind.container();
    let reader = HlsReader::start(
        ctx.clone(),
        media_url,
        media,
        kind,
        init,
        first.sequence,
        first_out,
    );
    Ok(OpenedMedia {
        reader: Box::new(reader),
        container,
        extension: Some(container.extension().to_string()),
        mime: None,
        seekable: !live,
    })
}

/// A local HLS playlist: its segments would be local files, which are not played.
pub fn local_unsupported(path: &str) -> Exception {
    error::unsupported_media(
        "HLS playlists are played from http(s) URLs only.",
        &format!("{path} is an HLS playlist"),
    )
}
