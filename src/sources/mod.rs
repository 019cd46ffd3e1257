//! Sources: turn an identifier into track(s) (`/v4/loadtracks`) and open a track's bytes for
//! playback. Asked in Lavalink's order: the yt-dlp backed sites (youtube, soundcloud, bandcamp,
//! twitch, vimeo, niconico — when yt-dlp was found), then `local`, then `http`, the catch-all
//! for URLs; an `http(s)` URL the http source cannot play (a web page, an unknown format) is
//! then offered to yt-dlp's other extractors. M3U/PLS playlists are followed by local and http;
//! HLS is played by [`hls`]. A yt-dlp track plays by resolving its page again (stream URLs
//! expire) and reading the media URL through the same HTTP or HLS reader, with the headers
//! yt-dlp asks for. Container sniffing and symphonia probing are shared.

pub mod error;
pub mod hls;
pub mod http;
pub mod local;
pub mod playlist;
pub mod probe;
pub mod sniff;
pub mod window;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::load::Exception;
use crate::protocol::track::TrackInfo;
use crate::protocol::track_codec::{DetailsLayout, SourceDetails};
use crate::routeplanner::RoutePlanner;

use self::http::HttpSource;
use self::local::LocalSource;
use crate::resolver::{StreamProtocol, StreamTarget, YtDlpSlot};

/// Source configuration, filled from `application.yml` (`lavalink.server.sources.*`,
/// `httpConfig`, `timeouts`).
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub http: bool,
    pub local: bool,
    /// Local paths must resolve (after following symlinks) inside one of these directories.
    pub local_directories: Vec<PathBuf>,
    /// Lavalink's `timeouts.connectTimeoutMs`.
    pub connect_timeout: Duration,
    /// Lavalink's `timeouts.socketTimeoutMs`: the longest wait for the next bytes.
    pub read_timeout: Duration,
    /// `httpConfig.proxyHost/Port/User/Password`.
    pub proxy: Option<ProxySettings>,
    /// Bound on compressed bytes read ahead of the decoder per HTTP stream.
    pub read_ahead_bytes: usize,
    /// Lavalink's route planner: when set, every outgoing request is bound to its addresses.
    pub route_planner: Option<Arc<RoutePlanner>>,
}

impl Default for SourceSettings {
    fn default() -> Self {
        SourceSettings {
            http: true,
            local: false,
            local_directories: Vec::new(),
            connect_timeout: Duration::from_millis(3000),
            read_timeout: Duration::from_millis(3000),
            proxy: None,
            read_ahead_bytes: 1024 * 1024,
            route_planner: None,
        }
    }
}

/// An HTTP proxy for the http source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// A loaded track: what clients see, plus the source-specific details stored in its blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackData {
    pub info: TrackInfo,
    pub details: SourceDetails,
}

/// The outcome of loading an identifier (becomes a `LoadResult` once tracks are encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadedItem {
    Track(TrackData),
    Playlist {
        name: String,
        selected_track: i32,
        tracks: Vec<TrackData>,
    },
    Search(Vec<TrackData>),
    Empty,
    Error(Exception),
}

/// A track's bytes, ready for the demuxer.
pub struct OpenedMedia {
    pub reader: Box<dyn MediaReader>,
    /// The container named by the track's probe info; `probe::format_reader` opens it.
    pub container: sniff::Container,
    /// A file extension that names the container (`mp3`, `flac`, `wav`, `ogg`, `m4a`, `webm`,
    /// `aac`): a hint for the demuxer.
    pub extension: Option<String>,
    /// The `Content-Type` the server sent, if any.
    pub mime: Option<String>,
    /// Whether byte seeks outside the read-ahead window can succeed.
    pub seekable: bool,
}

impl std::fmt::Debug for OpenedMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedMedia")
            .field("container", &self.container)
            .field("extension", &self.extension)
            .field("mime", &self.mime)
            .field("seekable", &self.seekable)
            .finish_non_exhaustive()
    }
}

/// How much of a reader can be read without blocking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// Bytes readable now, from the current position, without blocking.
    pub buffered: usize,
    /// The end of the stream (or a terminal error) is known: reads past `buffered` return at once.
    pub finished: bool,
}

impl Readiness {
    /// True when a read of up to `want` bytes will not block.
    pub fn ready_for(&self, want: usize) -> bool {
        self.finished || self.buffered >= want
    }
}

/// A cloneable way to ask a reader's readiness after the reader itself has been moved into a
/// demuxer.
#[derive(Clone)]
pub struct ReadinessHandle(Arc<dyn Fn() -> Readiness + Send + Sync>);

impl ReadinessHandle {
    pub fn new(f: impl Fn() -> Readiness + Send + Sync + 'static) -> Self {
        ReadinessHandle(Arc::new(f))
    }

    pub fn get(&self) -> Readiness {
        (self.0)()
    }
}

impl std::fmt::Debug for ReadinessHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReadinessHandle").field(&self.get()).finish()
    }
}

/// Called from any thread when bytes arrive or the stream ends.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// A symphonia `MediaSource` that can tell whether a read would block.
///
/// `Read` and `Seek` block (at most the configured read timeout per wait; a timeout surfaces as
/// an `io::ErrorKind::TimedOut` error), so call them off the async runtime and, for playback,
/// only once `readiness()` says enough bytes are there.
pub trait MediaReader: symphonia::core::io::MediaSource {
    /// Bytes readable now without blocking, and whether EOF/error is known.
    fn readiness(&self) -> Readiness;
    /// `notify` is called from any thread when bytes arrive or the stream ends.
    fn set_notify(&mut self, notify: Notify);
    /// The same answer as `readiness()`, usable after the reader is moved into a demuxer.
    fn readiness_handle(&self) -> ReadinessHandle;
}

/// The registry of source managers, asked in Lavalink's order: the yt-dlp sites, `local`, then
/// `http` last.
pub struct SourceManagers {
    ytdlp: Arc<YtDlpSlot>,
    local: Option<LocalSource>,
    /// Always built: it also plays what yt-dlp resolves. Loads only when `http_enabled`.
    http: HttpSource,
    http_enabled: bool,
}

impl SourceManagers {
    /// The sources `settings` enables, and the yt-dlp backed ones if yt-dlp is (or will be)
    /// found: a resolver, `None`, or a [`YtDlpSlot`] still searching.
    pub fn new(settings: SourceSettings, ytdlp: impl Into<YtDlpSlot>) -> Self {
        let local = settings.local.then(|| LocalSource::new(&settings));
        SourceManagers {
            ytdlp: Arc::new(ytdlp.into()),
            local,
            http: HttpSource::new(&settings),
            http_enabled: settings.http,
        }
    }

    fn http(&self) -> Option<&HttpSource> {
        self.http_enabled.then_some(&self.http)
    }

    /// Starts looking for yt-dlp now, without waiting for it (see [`YtDlpSlot`]).
    pub fn find_ytdlp_in_background(&self) {
        self.ytdlp.search_in_background();
    }

    /// Enabled `sourceName`s, in registration order (for `/v4/info`); waits for the search for
    /// yt-dlp if it is still running.
    pub async fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if let Some(ytdlp) = self.ytdlp.get().await {
            names.extend(ytdlp.source_names());
        }
        if self.local.is_some() {
            names.push(local::SOURCE_NAME);
        }
        if self.http_enabled {
            names.push(http::SOURCE_NAME);
        }
        names
    }

    /// How an enabled source lays out its detail bytes; `None` for sources that are not enabled.
    pub fn details_layout(&self, source_name: &str) -> Option<DetailsLayout> {
        match source_name {
            local::SOURCE_NAME if self.local.is_some() => Some(DetailsLayout::ProbeInfo),
            http::SOURCE_NAME if self.http_enabled => Some(DetailsLayout::ProbeInfo),
            other => self.ytdlp.details_layout(other),
        }
    }

    /// Resolves an identifier: the first source that claims it answers; nobody → `Empty`.
    pub async fn load(&self, identifier: &str) -> LoadedItem {
        let ytdlp = self.ytdlp.get().await;
        if let Some(ytdlp) = ytdlp
            && let Some(item) = ytdlp.load(identifier).await
        {
            return item;
        }
        if let Some(local) = &self.local
            && let Some(path) = local.resolve(identifier).await
        {
            return local.load(path, self.http()).await;
        }
        if let Some(http) = self.http()
            && http::claims(identifier)
        {
            let item = http.load(identifier).await;
            if let (LoadedItem::Error(e), Some(ytdlp)) = (&item, ytdlp)
                && wants_fallback(e)
                && let Some(other) = ytdlp.fallback(identifier.trim()).await
            {
                return other;
            }
            return item;
        }
        LoadedItem::Empty
    }

    /// Opens a track (decoded from a blob or just loaded) for playback.
    pub async fn open(&self, track: &TrackData) -> Result<OpenedMedia, Exception> {
        match track.info.source_name.as_str() {
            local::SOURCE_NAME => match &self.local {
                Some(local) => local.open(track).await,
                None => Err(error::source_disabled(local::SOURCE_NAME)),
            },
            http::SOURCE_NAME => match self.http() {
                Some(http) => http.open(track).await,
                None => Err(error::source_disabled(http::SOURCE_NAME)),
            },
            other => match self.ytdlp.get().await {
                Some(ytdlp) if ytdlp.plays(other) => {
                    let target = ytdlp.stream(track).await?;
                    self.open_target(target).await
                }
                _ => Err(error::source_disabled(other)),
            },
        }
    }

    /// Opens what yt-dlp resolved: a plain HTTP resource or an HLS playlist, with its headers.
    async fn open_target(&self, target: StreamTarget) -> Result<OpenedMedia, Exception> {
        let url = playlist::parse_http_url(&target.url)
            .ok_or_else(|| error::not_a_valid_url(&target.url))?;
        match target.protocol {
            StreamProtocol::Http => {
                let container = target
                    .container
                    .as_deref()
                    .and_then(sniff::Container::from_extension);
                let mime = target.mime();
                let mut media = self.http.open_url(url, target.headers, container).await?;
                if media.mime.is_none() {
                    media.mime = mime.map(str::to_string);
                }
                Ok(media)
            }
            StreamProtocol::Hls => hls::open(&self.http.hls_context(target.headers), url).await,
            StreamProtocol::Dash => Err(error::unsupported_media(
                "This track is only available as DASH segments, which cannot be played.",
                &target.url,
            )),
            StreamProtocol::Other(protocol) => Err(error::unsupported_media(
                "This track's stream cannot be played.",
                &format!("protocol {protocol}"),
            )),
        }
    }
}

/// Whether the http source's failure on a URL is one yt-dlp's extractors may do better on: the
/// URL is a web page, or media of a kind the http source does not know.
fn wants_fallback(e: &Exception) -> bool {
    matches!(
        e.message.as_deref(),
        Some(error::UNKNOWN_FORMAT | error::UNSUPPORTED_FORMAT)
    )
}
