//! The `http` source: any `http://`, `https://` or `icy://` URL. Loading fetches the URL
//! (redirects followed, at most five), answers 404 with `empty`, sniffs and probes the media
//! with ranged reads, and follows M3U/PLS playlists; playback opens a streaming reader.

pub mod fetch;
pub mod icy;
pub mod net;
pub mod reader;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode, Url};

use crate::protocol::load::Exception;
use crate::protocol::track::{TrackInfo, UNKNOWN_LENGTH};
use crate::protocol::track_codec::SourceDetails;

use self::fetch::{FetchError, Fetched, fetch};
use self::net::Net;
use self::reader::{HttpReader, StreamConfig};
use super::playlist::{self, ParsedPlaylist};
use super::probe::{self, Inspection, ProbeOutcome};
use super::sniff::{self, Container, MediaHint, PlaylistKind, Sniffed};
use super::{LoadedItem, OpenedMedia, SourceSettings, TrackData, error, hls};

pub const SOURCE_NAME: &str = "http";

/// Probing at load time asks for pieces of this size, each when it is needed: enough for most
/// headers in one request, and a file whose index sits at its end is not downloaded.
const PROBE_CHUNK: u64 = 64 * 1024;
/// Playlist entries probed at the same time.
const PLAYLIST_CONCURRENCY: usize = 4;

pub const UNKNOWN_TITLE: &str = "Unknown title";
pub const UNKNOWN_ARTIST: &str = "Unknown artist";

/// Whether the http source claims `identifier` (by its scheme).
pub fn claims(identifier: &str) -> bool {
    let id = identifier.trim_start();
    ["http://", "https://", "icy://"].iter().any(|scheme| {
        id.len() >= scheme.len()
            && id.is_char_boundary(scheme.len())
            && id[..scheme.len()].eq_ignore_ascii_case(scheme)
    })
}

pub struct HttpSource {
    net: Arc<Net>,
    header_timeout: Duration,
    read_timeout: Duration,
    read_ahead: usize,
}

/// Why a URL did not give media.
enum Failure {
    /// 404: the load result is `empty`.
    NotFound,
    Error(Exception),
}

impl From<Exception> for Failure {
    fn from(e: Exception) -> Self {
        Failure::Error(e)
    }
}

impl HttpSource {
    pub fn new(settings: &SourceSettings) -> Self {
        HttpSource {
            net: Net::new(settings),
            header_timeout: settings.connect_timeout + settings.read_timeout,
            read_timeout: settings.read_timeout,
            read_ahead: settings.read_ahead_bytes.max(64 * 1024),
        }
    }

    /// The network this source's requests go through (route planner included).
    pub fn net(&self) -> &Arc<Net> {
        &self.net
    }

    /// How long to wait for response headers, and for the next bytes.
    pub fn timeouts(&self) -> (Duration, Duration) {
        (self.header_timeout, self.read_timeout)
    }

    /// `/v4/loadtracks` for a URL.
    pub async fn load(&self, identifier: &str) -> LoadedItem {
        let identifier = identifier.trim();
        let Some(url) = playlist::parse_http_url(identifier) else {
            return LoadedItem::Error(error::not_a_valid_url(identifier));
        };
        let given = if identifier.to_ascii_lowercase().starts_with("icy://") {
            format!("http://{}", &identifier["icy://".len()..])
        } else {
            identifier.to_string()
        };
        match self.inspect(url).await {
            Err(Failure::NotFound) => LoadedItem::Empty,
            Err(Failure::Error(e)) => LoadedItem::Error(e),
            Ok((fetched_url, redirected, Inspection::Media(outcome), extra)) => {
                // Without redirects, the identifier stays exactly as the client wrote it.
                let id = if redirected {
                    fetched_url.to_string()
                } else {
                    given
                };
                LoadedItem::Track(track_data(id, outcome, extra.fallback_title()))
            }
            Ok((fetched_url, redirected, Inspection::Playlist { kind, text }, _)) => {
                let id = if redirected {
                    fetched_url.to_string()
                } else {
                    given
                };
                self.load_playlist(id, fetched_url, kind, &text).await
            }
        }
    }

    /// Loads one entry of a playlist: a track, or nothing (missing, itself a playlist).
    pub(crate) async fn load_entry(
        &self,
        url: Url,
        title: Option<String>,
    ) -> Result<Option<TrackData>, Exception> {
        match self.inspect(url).await {
            Ok((url, _, Inspection::Media(outcome), extra)) => Ok(Some(track_data(
                url.to_string(),
                outcome,
                title.or(extra.fallback_title()),
            ))),
            Ok((_, _, Inspection::Playlist { .. }, _)) | Err(Failure::NotFound) => Ok(None),
            Err(Failure::Error(e)) => Err(e),
        }
    }

    async fn load_playlist(
        &self,
        identifier: String,
        base: Url,
        kind: PlaylistKind,
        text: &str,
    ) -> LoadedItem {
        let parsed = playlist::parse(kind, text);
        if parsed.is_hls {
            let ctx = self.hls_context(Vec::new());
            return match hls::load(&ctx, identifier, base, text).await {
                Ok(track) => LoadedItem::Track(track),
                Err(e) => LoadedItem::Error(e),
            };
        }
        let name = parsed
            .name
            .clone()
            .unwrap_or_else(|| playlist::name_from_url(&base));
        let ParsedPlaylist { entries, .. } = parsed;
        let loads = entries.into_iter().filter_map(|entry| {
            playlist::resolve_against_url(&base, &entry.location).map(|url| (url, entry.title))
        });
        let results: Vec<_> = futures_util::stream::iter(loads)
            .map(|(url, title)| self.load_entry(url, title))
            .buffered(PLAYLIST_CONCURRENCY)
            .collect()
            .await;
        collect_playlist(name, results)
    }

    /// Fetches `url` and inspects what it serves.
    async fn inspect(&self, url: Url) -> Result<(Url, bool, Inspection, Extra), Failure> {
        let fetched = fetch(
            &self.net,
            url,
            0,
            Some(PROBE_CHUNK - 1),
            &[],
            self.header_timeout,
        )
        .await
        .map_err(fetch_error)?;
        let Fetched {
            response,
            url,
            redirected,
        } = fetched;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(Failure::NotFound);
        }
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            // Not even byte 0 exists.
            return Err(error::unknown_format("the resource is empty").into());
        }
        if !status.is_success() {
            return Err(error::not_playable(&format!("Status code {}", status.as_u16())).into());
        }
        let hint = MediaHint::from_content_type(header(&response, CONTENT_TYPE.as_str()))
            .with_extension(url_extension(&url));
        let icy_name = header(&response, "icy-name").map(str::to_string);
        let config = self.stream_config(&url, Vec::new(), PROBE_CHUNK as usize, Some(PROBE_CHUNK));
        let reader = HttpReader::start(config, response);
        let live = reader.is_live();
        let title = reader.title_handle();
        let inspection = tokio::task::spawn_blocking(move || {
            probe::inspect(Box::new(reader), &hint, error::CONNECT_FAILED)
        })
        .await
        .map_err(|e| error::internal(&e.to_string()))??;
        let inspection = match inspection {
            // Internet radio never ends, whatever the first frames suggest.
            Inspection::Media(outcome) if live => Inspection::Media(ProbeOutcome {
                length_ms: None,
                ..outcome
            }),
            other => other,
        };
        let extra = Extra {
            stream_title: title.get(),
            icy_name,
        };
        Ok((url, redirected, inspection, extra))
    }

    fn stream_config(
        &self,
        url: &Url,
        headers: Vec<(String, String)>,
        read_ahead: usize,
        request_len: Option<u64>,
    ) -> StreamConfig {
        StreamConfig {
            net: self.net.clone(),
            url: url.clone(),
            headers,
            header_timeout: self.header_timeout,
            read_timeout: self.read_timeout,
            read_ahead,
            request_len,
        }
    }

    /// What the HLS reader needs to fetch playlists and segments.
    pub fn hls_context(&self, headers: Vec<(String, String)>) -> hls::HlsContext {
        hls::HlsContext {
            net: self.net.clone(),
            headers,
            header_timeout: self.header_timeout,
            read_timeout: self.read_timeout,
            read_ahead: self.read_ahead,
        }
    }

    /// Opens an http track for playback.
    pub async fn open(&self, track: &TrackData) -> Result<OpenedMedia, Exception> {
        let location = track.info.uri.as_deref().unwrap_or(&track.info.identifier);
        let url =
            playlist::parse_http_url(location).ok_or_else(|| error::not_a_valid_url(location))?;
        if let SourceDetails::ProbeInfo(info) = &track.details
            && info.split('|').next() == Some("m3u")
        {
            return hls::open(&self.hls_context(Vec::new()), url).await;
        }
        let container = playback_container(&track.details)?;
        self.open_url(url, Vec::new(), Some(container)).await
    }

    /// Opens `url` for playback, sending `headers` with every request. `container`: what the
    /// media is known to be; `None` sniffs it from the first bytes.
    pub async fn open_url(
        &self,
        url: Url,
        headers: Vec<(String, String)>,
        container: Option<Container>,
    ) -> Result<OpenedMedia, Exception> {
        let fetched = fetch(&self.net, url, 0, None, &headers, self.header_timeout)
            .await
            .map_err(|e| match fetch_error(e) {
                Failure::Error(e) => e,
                Failure::NotFound => error::not_playable("Status code 404"),
            })?;
        let status = fetched.response.status();
        if !status.is_success() {
            return Err(error::not_playable(&format!(
                "Status code {}",
                status.as_u16()
            )));
        }
        let mime = header(&fetched.response, CONTENT_TYPE.as_str()).map(str::to_string);
        let hint = MediaHint::from_content_type(mime.as_deref())
            .with_extension(url_extension(&fetched.url));
        let reader = HttpReader::start(
            self.stream_config(&fetched.url, headers, self.read_ahead, None),
            fetched.response,
        );
        let container = match container {
            Some(c) => c,
            None => sniff_reader(&reader, &hint).await?,
        };
        Ok(OpenedMedia {
            seekable: reader.range_supported(),
            reader: Box::new(reader),
            container,
            extension: Some(container.extension().to_string()),
            mime,
        })
    }
}

/// The container of a stream being read, from its first bytes (waits for them, without
/// consuming them).
async fn sniff_reader(reader: &HttpReader, hint: &MediaHint) -> Result<Container, Exception> {
    let head = reader.peek_head(8 * 1024).await;
    match sniff::sniff(&head, hint, sniff::id3v2_len(&head).is_some()) {
        Sniffed::Media { container, .. } => Ok(container),
        Sniffed::Unsupported(what) => Err(error::unsupported_media(
            error::UNSUPPORTED_FORMAT,
            &format!("the media is {what}"),
        )),
        _ => Err(error::unknown_format(&format!(
            "no known container in the first {} bytes",
            head.len()
        ))),
    }
}

/// The container a track's probe info names, or why it cannot be played.
pub(crate) fn playback_container(details: &SourceDetails) -> Result<Container, Exception> {
    match details {
        SourceDetails::ProbeInfo(info) => Container::from_probe_info(info).ok_or_else(|| {
            if info.starts_with("m3u") {
                error::unsupported_media("This HLS stream can only be played from its URL.", info)
            } else {
                error::unsupported_media(
                    "This track cannot be played: its container is unknown.",
                    &format!("probe info '{info}'"),
                )
            }
        }),
        SourceDetails::None => Err(error::unsupported_media(
            "This track cannot be played: its container is unknown.",
            "no probe info",
        )),
    }
}

/// Facts from the response headers and the stream's in-band metadata.
struct Extra {
    /// ICY `StreamTitle` seen while probing.
    stream_title: Option<String>,
    icy_name: Option<String>,
}

impl Extra {
    /// A title when the media has no title tag: an internet radio's current `StreamTitle`,
    /// else its `icy-name`.
    fn fallback_title(&self) -> Option<String> {
        [&self.stream_title, &self.icy_name]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .map(str::to_string)
    }
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn url_extension(url: &Url) -> Option<&str> {
    let last = url.path_segments()?.next_back()?;
    let (_, ext) = last.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 5).then_some(ext)
}

fn fetch_error(e: FetchError) -> Failure {
    Failure::Error(match e {
        FetchError::Connect(detail) => error::connect_failed(&detail),
        FetchError::TooManyRedirects | FetchError::BadRedirect(_) => {
            error::not_playable(&e.to_string())
        }
    })
}

/// The `TrackInfo` of probed media at `location` (a URL or a path).
pub(crate) fn track_info(
    source_name: &str,
    location: String,
    outcome: &ProbeOutcome,
    fallback_title: Option<String>,
) -> TrackInfo {
    let length = outcome
        .length_ms
        .map(|ms| i64::try_from(ms).unwrap_or(UNKNOWN_LENGTH));
    let is_stream = length.is_none();
    TrackInfo {
        identifier: location.clone(),
        is_seekable: !is_stream,
        author: outcome
            .author
            .clone()
            .unwrap_or_else(|| UNKNOWN_ARTIST.to_string()),
        length: length.unwrap_or(UNKNOWN_LENGTH),
        is_stream,
        position: 0,
        title: outcome
            .title
            .clone()
            .or(fallback_title)
            .unwrap_or_else(|| UNKNOWN_TITLE.to_string()),
        uri: Some(location),
        artwork_url: None,
        isrc: outcome.isrc.clone(),
        source_name: source_name.to_string(),
    }
}

fn track_data(
    location: String,
    outcome: ProbeOutcome,
    fallback_title: Option<String>,
) -> TrackData {
    TrackData {
        info: track_info(SOURCE_NAME, location, &outcome, fallback_title),
        details: SourceDetails::ProbeInfo(outcome.container.probe_name().to_string()),
    }
}

/// A playlist result from its entries' outcomes: the tracks that loaded; when none did, the
/// first error (or `empty`).
pub(crate) fn collect_playlist(
    name: String,
    results: Vec<Result<Option<TrackData>, Exception>>,
) -> LoadedItem {
    let mut tracks = Vec::new();
    let mut first_error = None;
    for result in results {
        match result {
            Ok(Some(track)) => tracks.push(track),
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if tracks.is_empty() {
        return first_error.map_or(LoadedItem::Empty, LoadedItem::Error);
    }
    LoadedItem::Playlist {
        name,
        selected_track: -1,
        tracks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_schemes() {
        assert!(claims("http://a/b"));
        assert!(claims("HTTPS://a/b"));
        assert!(claims("icy://radio:8000/"));
        assert!(!claims("ytsearch:foo"));
        assert!(!claims("/music/a.mp3"));
        assert!(!claims("httpx://a"));
        assert!(!claims("é"));
    }

    #[test]
    fn extensions() {
        let u = |s| Url::parse(s).unwrap();
        assert_eq!(url_extension(&u("http://h/a/b.MP3?x=y")), Some("MP3"));
        assert_eq!(url_extension(&u("http://h/a/")), None);
        assert_eq!(url_extension(&u("http://h/stream")), None);
    }

    #[test]
    fn untagged_defaults() {
        let outcome = ProbeOutcome {
            container: Container::Mp3,
            title: None,
            author: None,
            isrc: None,
            length_ms: None,
        };
        let info = track_info("http", "http://h/x".into(), &outcome, None);
        assert_eq!(info.title, "Unknown title");
        assert_eq!(info.author, "Unknown artist");
        assert_eq!(info.length, i64::MAX);
        assert!(info.is_stream);
        assert!(!info.is_seekable);
        assert_eq!(info.uri.as_deref(), Some("http://h/x"));
        assert_eq!(info.identifier, "http://h/x");
        assert_eq!(info.artwork_url, None);
        let tagged = ProbeOutcome {
            title: Some("T".into()),
            length_ms: Some(1234),
            ..outcome
        };
        let info = track_info("http", "u".into(), &tagged, Some("fallback".into()));
        assert_eq!(info.title, "T");
        assert_eq!(info.length, 1234);
        assert!(info.is_seekable && !info.is_stream);
    }

    #[test]
    fn playlist_outcomes() {
        let e = error::not_playable("x");
        assert_eq!(
            collect_playlist("p".into(), vec![Ok(None), Err(e.clone())]),
            LoadedItem::Error(e.clone())
        );
        assert_eq!(collect_playlist("p".into(), vec![]), LoadedItem::Empty);
        let t = track_data(
            "u".into(),
            ProbeOutcome {
                container: Container::Flac,
                title: None,
                author: None,
                isrc: None,
                length_ms: Some(1),
            },
            None,
        );
        assert_eq!(
            collect_playlist("p".into(), vec![Err(e), Ok(Some(t.clone()))]),
            LoadedItem::Playlist {
                name: "p".into(),
                selected_track: -1,
                tracks: vec![t]
            }
        );
    }
}
