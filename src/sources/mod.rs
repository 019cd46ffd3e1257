//! Sources: turn an identifier into track(s) (`/v4/loadtracks`) and open a track's bytes for
//! playback. Only the `local` and `http` sources live here so far, asked in Lavalink's order
//! (`local` before `http`, which is the catch-all for URLs); M3U/PLS playlists are followed by
//! both. Container sniffing and symphonia probing are shared by the two.

pub mod error;
pub mod hls;
pub mod http;
pub mod local;
pub mod playlist;
pub mod probe;
pub mod sniff;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::load::Exception;
use crate::protocol::track::TrackInfo;
use crate::protocol::track_codec::{DetailsLayout, SourceDetails};

use self::http::HttpSource;
use self::local::LocalSource;

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

/// The registry of source managers, asked in Lavalink's order: `local`, then `http` last.
pub struct SourceManagers {
    local: Option<LocalSource>,
    http: Option<HttpSource>,
}

impl SourceManagers {
    pub fn new(settings: SourceSettings) -> Self {
        let local = settings.local.then(|| LocalSource::new(&settings));
        let http = settings.http.then(|| HttpSource::new(&settings));
        SourceManagers { local, http }
    }

    /// Enabled `sourceName`s, in registration order (for `/v4/info`).
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.local.is_some() {
            names.push(local::SOURCE_NAME);
        }
        if self.http.is_some() {
            names.push(http::SOURCE_NAME);
        }
        names
    }

    /// How an enabled source lays out its detail bytes; `None` for sources that are not enabled.
    pub fn details_layout(&self, source_name: &str) -> Option<DetailsLayout> {
        match source_name {
            local::SOURCE_NAME if self.local.is_some() => Some(DetailsLayout::ProbeInfo),
            http::SOURCE_NAME if self.http.is_some() => Some(DetailsLayout::ProbeInfo),
            _ => None,
        }
    }

    /// Resolves an identifier: the first source that claims it answers; nobody → `Empty`.
    pub async fn load(&self, identifier: &str) -> LoadedItem {
        if let Some(local) = &self.local
            && let Some(path) = local.resolve(identifier).await
        {
            return local.load(path, self.http.as_ref()).await;
        }
        if let Some(http) = &self.http
            && http::claims(identifier)
        {
            return http.load(identifier).await;
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
            http::SOURCE_NAME => match &self.http {
                Some(http) => http.open(track).await,
                None => Err(error::source_disabled(http::SOURCE_NAME)),
            },
            other => Err(error::source_disabled(other)),
        }
    }
}
