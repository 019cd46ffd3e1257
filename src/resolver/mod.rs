//! The yt-dlp resolver: YouTube, SoundCloud, Bandcamp, Twitch, Vimeo and Niconico (and, as a
//! fallback for `http(s)` URLs the http source cannot play, any site yt-dlp supports), through
//! the maintained extractor instead of hand-kept scrapers.
//!
//! Start-up cost is paid once: a long-lived helper process (`helper.py`, embedded here and
//! written to a temporary file) imports yt-dlp as a library and answers JSON-line requests on a
//! pool of threads, with a bounded queue, per-request timeouts and a restart when it dies.
//! Resolutions are cached briefly, so a load followed by a play costs one round trip.
//!
//! yt-dlp is optional: [`YtDlpResolver::detect`] looks for it (see [`locate`]) and returns
//! `None` with one warning when it is missing; the sources are then left out of `/v4/info` and
//! their identifiers fall through to the next source, as Lavalink's disabled sources do.
//!
//! Public API, for the source registry:
//! - [`YtDlpResolver::detect`] — find yt-dlp and start the helper.
//! - [`YtDlpResolver::source_names`] — the enabled sources, for `/v4/info`.
//! - [`YtDlpResolver::load`] — `None` when no yt-dlp source claims the identifier, else the
//!   load result (track / playlist with `selectedTrack` / search / empty / error).
//! - [`YtDlpResolver::fallback`] — any site yt-dlp knows, for URLs the http source failed on.
//! - [`YtDlpResolver::plays`] / [`YtDlpResolver::details_layout`] — which decoded tracks are ours.
//! - [`YtDlpResolver::stream`] — resolve a track again (stream URLs expire) to a direct media URL,
//!   the HTTP headers yt-dlp says to send, and the container/codec (so Opus in WebM can be
//!   passed through).
//!
//! Identifiers and track fields follow Lavalink's sources (see [`map`] for each site), so encoded
//! tracks round-trip with real Lavalink's. Note that YouTube extraction with current yt-dlp
//! versions may also need a JavaScript runtime (e.g. deno) and yt-dlp's `default` extras installed
//! next to it; that is between the operator and yt-dlp.
//!
//! Tests: the unit tests here check our side of the contract (identifier → query, yt-dlp JSON →
//! tracks, failure → severity) on hand-written yt-dlp output; `tests/ytdlp_resolver.rs` runs the
//! real yt-dlp (installed by `tests/tools/install-ytdlp.sh`) against pages served on loopback;
//! `benches/ytdlp.rs` compares a process per request with the warm helper.

pub mod cache;
pub mod error;
pub mod locate;
pub mod map;
pub mod process;
pub mod route;
pub mod slot;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::protocol::load::{Exception, Severity};
use crate::protocol::track_codec::DetailsLayout;
use crate::routeplanner::RoutePlanner;
use crate::sources::{LoadedItem, TrackData};

use cache::Cache;
use error::Outcome;
use map::MapOptions;
use process::{Helper, HelperConfig, RequestError};
use route::{Kind, Query, Route, RouteConfig, Source};

pub use route::GENERIC_SOURCE_NAME;
pub use slot::YtDlpSlot;

/// `lavalink.server.sources.*` for the yt-dlp backed sources, plus the generic fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YtDlpSources {
    pub youtube: bool,
    pub soundcloud: bool,
    pub bandcamp: bool,
    pub twitch: bool,
    pub vimeo: bool,
    /// `sources.nico`.
    pub niconico: bool,
    /// Other sites yt-dlp supports, for `http(s)` URLs the http source could not play.
    pub generic: bool,
}

impl YtDlpSources {
    fn enabled(&self, source: Source) -> bool {
        match source {
            Source::Youtube => self.youtube,
            Source::Soundcloud => self.soundcloud,
            Source::Bandcamp => self.bandcamp,
            Source::Twitch => self.twitch,
            Source::Vimeo => self.vimeo,
            Source::Niconico => self.niconico,
            Source::Generic => self.generic,
        }
    }

    /// Whether any source yt-dlp would serve is on.
    pub fn any(&self) -> bool {
        self.youtube
            || self.soundcloud
            || self.bandcamp
            || self.twitch
            || self.vimeo
            || self.niconico
            || self.generic
    }

    /// Whether `source_name` is one of these sources and enabled.
    pub fn plays(&self, source_name: &str) -> bool {
        Source::from_name(source_name).is_some_and(|s| self.enabled(s))
    }
}

impl Default for YtDlpSources {
    fn default() -> Self {
        YtDlpSources {
            youtube: true,
            soundcloud: true,
            bandcamp: true,
            twitch: true,
            vimeo: true,
            niconico: false,
            generic: true,
        }
    }
}

/// Settings of the resolver.
#[derive(Debug, Clone)]
pub struct YtDlpSettings {
    /// A Python interpreter that can import `yt_dlp` (e.g. `<venv>/bin/python`). When set,
    /// nothing else is tried.
    pub python: Option<PathBuf>,
    /// A `yt-dlp` executable (pip console script or zipapp); its interpreter is used.
    pub ytdlp: Option<PathBuf>,
    pub sources: YtDlpSources,
    pub youtube_search_enabled: bool,
    pub soundcloud_search_enabled: bool,
    pub soundcloud_filter_out_preview_tracks: bool,
    /// `youtubePlaylistLoadLimit`: pages of 100 videos.
    pub youtube_playlist_load_limit: u32,
    /// Bound on other playlists (SoundCloud sets, Bandcamp albums, pages).
    pub max_playlist_entries: u32,
    /// Results per search.
    pub search_results: u32,
    /// Threads in the helper (concurrent resolutions).
    pub workers: usize,
    /// Requests that may wait for a thread; more are refused.
    pub queue_capacity: usize,
    pub request_timeout: Duration,
    pub startup_timeout: Duration,
    /// yt-dlp's socket timeout.
    pub socket_timeout: Duration,
    /// How long a resolution is reused; zero disables the cache.
    pub cache_ttl: Duration,
    pub cache_capacity: usize,
    /// Proxy for yt-dlp's requests (`http://…`, `socks5://…`).
    pub proxy: Option<String>,
    /// Local address yt-dlp's requests are sent from.
    pub source_address: Option<IpAddr>,
    /// Lavalink's route planner: when set, each request is sent from the planner's next address
    /// (overriding `source_address`), and a 429 marks that address failing.
    pub route_planner: Option<Arc<RoutePlanner>>,
    /// yt-dlp's cache directory (YouTube player data); `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Base URL of Bandcamp for `bcsearch:` (a mirror, or a test server).
    pub bandcamp_base_url: Option<String>,
}

impl Default for YtDlpSettings {
    fn default() -> Self {
        YtDlpSettings {
            python: None,
            ytdlp: None,
            sources: YtDlpSources::default(),
            youtube_search_enabled: true,
            soundcloud_search_enabled: true,
            soundcloud_filter_out_preview_tracks: false,
            youtube_playlist_load_limit: 6,
            max_playlist_entries: 1000,
            search_results: 10,
            workers: 4,
            queue_capacity: 64,
            request_timeout: Duration::from_secs(30),
            startup_timeout: Duration::from_secs(90),
            socket_timeout: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(120),
            cache_capacity: 512,
            proxy: None,
            source_address: None,
            route_planner: None,
            cache_dir: None,
            bandcamp_base_url: None,
        }
    }
}

impl YtDlpSettings {
    /// The settings Lavalink's configuration gives (sources, searches, playlist limit).
    pub fn from_config(config: &crate::config::Config) -> YtDlpSettings {
        let s = &config.sources;
        YtDlpSettings {
            sources: YtDlpSources {
                youtube: s.youtube,
                soundcloud: s.soundcloud,
                bandcamp: s.bandcamp,
                twitch: s.twitch,
                vimeo: s.vimeo,
                niconico: s.nico,
                generic: s.http,
            },
            youtube_search_enabled: config.youtube_search_enabled,
            soundcloud_search_enabled: config.soundcloud_search_enabled,
            soundcloud_filter_out_preview_tracks: config.soundcloud_filter_out_preview_tracks,
            youtube_playlist_load_limit: config.youtube_playlist_load_limit,
            python: config.ytdlp_python.clone(),
            ytdlp: config.ytdlp_executable.clone(),
            ..YtDlpSettings::default()
        }
    }

    fn route_config(&self) -> RouteConfig {
        RouteConfig {
            youtube: self.sources.youtube,
            soundcloud: self.sources.soundcloud,
            bandcamp: self.sources.bandcamp,
            twitch: self.sources.twitch,
            vimeo: self.sources.vimeo,
            niconico: self.sources.niconico,
            youtube_search: self.youtube_search_enabled,
            soundcloud_search: self.soundcloud_search_enabled,
            youtube_playlist_pages: self.youtube_playlist_load_limit,
            search_results: self.search_results.clamp(1, 100),
            max_playlist_entries: self.max_playlist_entries.max(1),
        }
    }
}

/// How a stream is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamProtocol {
    /// A plain HTTP(S) resource (Range requests work).
    Http,
    /// An HLS playlist (`.m3u8`): live streams, SoundCloud's Opus.
    Hls,
    /// DASH segments.
    Dash,
    Other(String),
}

/// Where a track's audio is, right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTarget {
    pub url: String,
    /// Headers yt-dlp says to send (User-Agent, Referer, Cookie, …).
    pub headers: Vec<(String, String)>,
    pub protocol: StreamProtocol,
    /// yt-dlp's extension of the format: `webm`, `m4a`, `mp3`, `opus`, `ogg`, `wav`, `mp4`, ….
    pub container: Option<String>,
    /// Audio codec as yt-dlp reports it: `opus`, `mp4a.40.2`, `mp3`, `vorbis`, …; `None` if unknown.
    pub codec: Option<String>,
    pub is_live: bool,
    pub content_length: Option<u64>,
    pub duration_ms: Option<i64>,
}

impl StreamTarget {
    /// Opus in WebM/Matroska or Ogg: packets can be sent to Discord without re-encoding
    /// (when no filter is active).
    pub fn is_opus(&self) -> bool {
        self.codec.as_deref() == Some("opus")
    }

    /// A MIME type hint for the demuxer.
    pub fn mime(&self) -> Option<&'static str> {
        Some(match self.container.as_deref()? {
            "webm" | "weba" => "audio/webm",
            "m4a" | "mp4" | "m4b" => "audio/mp4",
            "mp3" => "audio/mpeg",
            "ogg" | "opus" | "oga" => "audio/ogg",
            "flac" => "audio/flac",
            "wav" => "audio/wav",
            "aac" => "audio/aac",
            "mkv" | "mka" => "audio/x-matroska",
            "ts" => "video/mp2t",
            _ => return None,
        })
    }
}

/// The warm yt-dlp resolver.
pub struct YtDlpResolver {
    settings: YtDlpSettings,
    routes: RouteConfig,
    helper: Helper,
    version: String,
    cache: parking_lot::Mutex<Cache>,
}

/// A yt-dlp request: the extraction parameters the helper understands. `source_address`: the
/// local address its requests leave from (the route planner's), if any.
fn request_for(query: &Query, need_format: bool, source_address: Option<IpAddr>) -> Value {
    json!({
        "op": "extract",
        "url": query.url,
        "flat": query.flat,
        "complete": query.complete,
        "playlist_start": query.playlist_start,
        "playlist_end": query.playlist_end,
        "need_format": need_format,
        "format": FORMAT,
        "source_address": source_address.map(|a| a.to_string()),
    })
}

/// yt-dlp format selection: audio only, preferring Opus and plain HTTP (not HLS/DASH), then any
/// audio, then the smallest thing with sound.
const FORMAT: &str = "bestaudio[acodec=opus][protocol^=http][protocol!*=dash]\
/bestaudio[protocol^=http][protocol!*=dash]/bestaudio\
/best[protocol^=http][protocol!*=dash]/best";

impl YtDlpResolver {
    /// Finds yt-dlp (configured interpreter or executable, else on `PATH`) and starts the warm
    /// helper. `None`, with one warning in the log, when no usable yt-dlp is found.
    pub async fn detect(settings: YtDlpSettings) -> Option<Arc<YtDlpResolver>> {
        let (candidates, mut failures) =
            locate::candidates(settings.python.as_deref(), settings.ytdlp.as_deref());
        for interpreter in candidates {
            let config = HelperConfig {
                interpreter: interpreter.clone(),
                workers: settings.workers.max(1),
                queue_capacity: settings.queue_capacity,
                request_timeout: settings.request_timeout,
                startup_timeout: settings.startup_timeout,
                socket_timeout: settings.socket_timeout,
                proxy: settings.proxy.clone(),
                source_address: settings.source_address,
                cache_dir: settings.cache_dir.clone(),
                bandcamp_base_url: settings.bandcamp_base_url.clone(),
            };
            match Helper::start(config).await {
                Ok((helper, version)) => {
                    tracing::info!(
                        version,
                        python = %interpreter.python.display(),
                        "yt-dlp resolver ready ({})",
                        interpreter.origin
                    );
                    let routes = settings.route_config();
                    let cache = Cache::new(settings.cache_ttl, settings.cache_capacity);
                    return Some(Arc::new(YtDlpResolver {
                        settings,
                        routes,
                        helper,
                        version,
                        cache: parking_lot::Mutex::new(cache),
                    }));
                }
                Err(e) => failures.push(format!("{}: {e}", interpreter.origin)),
            }
        }
        tracing::warn!(
            "yt-dlp not found, so YouTube, SoundCloud, Bandcamp, Twitch, Vimeo and Niconico are \
             disabled. Install it (e.g. `python3 -m pip install yt-dlp`) or configure its \
             interpreter (`acoustic.sources.ytdlp.python`). Tried: {}",
            if failures.is_empty() {
                "nothing (no python3 or yt-dlp on PATH)".to_string()
            } else {
                failures.join("; ")
            }
        );
        None
    }

    /// yt-dlp's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The helper's process id (for diagnostics and tests).
    pub fn helper_pid(&self) -> Option<u32> {
        self.helper.pid()
    }

    /// How many times the helper was started (more than 1 after a restart).
    pub fn helper_starts(&self) -> u64 {
        self.helper.starts()
    }

    /// The enabled sources, in Lavalink's order, for `/v4/info`.
    pub fn source_names(&self) -> Vec<&'static str> {
        let s = &self.settings.sources;
        [
            (s.youtube, Source::Youtube),
            (s.soundcloud, Source::Soundcloud),
            (s.bandcamp, Source::Bandcamp),
            (s.twitch, Source::Twitch),
            (s.vimeo, Source::Vimeo),
            (s.niconico, Source::Niconico),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, src)| src.name())
        .collect()
    }

    fn enabled(&self, source: Source) -> bool {
        self.settings.sources.enabled(source)
    }

    /// Whether tracks with this `sourceName` are played by this resolver (enabled sources and,
    /// with the generic fallback on, `ytdlp`).
    pub fn plays(&self, source_name: &str) -> bool {
        self.settings.sources.plays(source_name)
    }

    /// The detail layout of our sources' encoded tracks: none of them store details.
    pub fn details_layout(&self, source_name: &str) -> Option<DetailsLayout> {
        self.plays(source_name).then_some(DetailsLayout::Empty)
    }

    /// Loads an identifier if a yt-dlp backed source claims it; `None` lets the next source try.
    pub async fn load(&self, identifier: &str) -> Option<LoadedItem> {
        let query = match route::route(identifier, &self.routes)? {
            Route::Empty => return Some(LoadedItem::Empty),
            Route::Query(q) => q,
        };
        Some(
            self.run_load(&query, identifier)
                .await
                .unwrap_or_else(|o| match o {
                    Outcome::Empty | Outcome::Unsupported => LoadedItem::Empty,
                    Outcome::Error(e) => LoadedItem::Error(e),
                }),
        )
    }

    /// Loads any `http(s)` URL with yt-dlp's extractors (its generic one included), for URLs the
    /// http source could not play. `None` when yt-dlp has nothing for it (or it belongs to a
    /// disabled source), so the http source's own answer stands.
    pub async fn fallback(&self, url: &str) -> Option<LoadedItem> {
        if !self.settings.sources.generic
            || !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return None;
        }
        let query = Query {
            source: Source::Generic,
            kind: Kind::Auto,
            url: url.to_string(),
            flat: true,
            complete: true,
            playlist_start: None,
            playlist_end: Some(self.routes.max_playlist_entries),
        };
        match self.run_load(&query, url).await {
            Ok(LoadedItem::Empty) => None,
            Ok(item) => Some(item),
            Err(Outcome::Unsupported) => None,
            Err(Outcome::Empty) => Some(LoadedItem::Empty),
            Err(Outcome::Error(e)) => Some(LoadedItem::Error(e)),
        }
    }

    async fn run_load(&self, query: &Query, identifier: &str) -> Result<LoadedItem, Outcome> {
        let info = self.extract(query, false).await?;
        let options = MapOptions {
            filter_soundcloud_previews: self.settings.soundcloud_filter_out_preview_tracks,
        };
        let allowed = |s: Source| self.enabled(s);
        Ok(map::map_result(&info, query, identifier, options, &allowed))
    }

    fn cache_key(query: &Query) -> String {
        format!(
            "{}|{}|{}|{:?}|{:?}|{}",
            query.url, query.flat, query.complete, query.playlist_start, query.playlist_end, FORMAT
        )
    }

    async fn extract(&self, query: &Query, need_format: bool) -> Result<Arc<Value>, Outcome> {
        let key = Self::cache_key(query);
        if let Some(hit) = self.cache.lock().get(&key, Instant::now())
            && (!need_format || str_of(&hit, "url").is_some() || hit.get("entries").is_some())
        {
            return Ok(hit);
        }
        let address = match &self.settings.route_planner {
            Some(planner) => Some(planner.next_address().ok_or_else(|| {
                Outcome::Error(error::resolver_fault(
                    "the route planner has no usable address (all are failing or excluded)",
                ))
            })?),
            None => None,
        };
        let result = self
            .helper
            .request(request_for(query, need_format, address))
            .await;
        if let (Err(RequestError::Failed(e)), Some(planner), Some(address)) =
            (&result, &self.settings.route_planner, address)
            && e.http_status == Some(429)
            && (query.kind != Kind::Search || planner.search_triggers_fail)
        {
            planner.mark_failing(address);
        }
        match result {
            Ok(info) => {
                let info = Arc::new(info);
                self.cache.lock().insert(key, info.clone(), Instant::now());
                Ok(info)
            }
            Err(RequestError::Failed(e)) => {
                let outcome = error::classify(&e, query.source);
                if let Outcome::Error(x) = &outcome {
                    tracing::debug!(url = query.url, error = ?e, severity = ?x.severity, "yt-dlp failed");
                }
                Err(outcome)
            }
            Err(RequestError::Busy) => Err(Outcome::Error(error::resolver_busy())),
            Err(RequestError::Timeout) => Err(Outcome::Error(error::resolver_timeout(
                self.settings.request_timeout.as_secs(),
            ))),
            Err(RequestError::Unavailable(why)) => Err(Outcome::Error(error::resolver_fault(&why))),
        }
    }

    /// Resolves a track's current stream: the direct media URL, the headers to send with it and
    /// what the media is. Stream URLs expire, so this is called for each playback (a resolution
    /// from the last moments is reused).
    pub async fn stream(&self, track: &TrackData) -> Result<StreamTarget, Exception> {
        let info = &track.info;
        let Some(source) = Source::from_name(&info.source_name).filter(|s| self.enabled(*s)) else {
            return Err(Exception::new(
                format!("The {} source is not available.", info.source_name),
                Severity::Fault,
                "java.lang.IllegalStateException",
                "no enabled yt-dlp source plays this track",
            ));
        };
        let url = match source {
            Source::Youtube => route::youtube_url(&info.identifier),
            Source::Vimeo if info.identifier.bytes().all(|b| b.is_ascii_digit()) => {
                route::vimeo_url(&info.identifier)
            }
            Source::Niconico if !info.identifier.contains('/') => route::nico_url(&info.identifier),
            // SoundCloud identifiers are API lookup URLs that need a client id; the permalink
            // (uri) is what yt-dlp resolves. Twitch and Bandcamp store their page URL.
            Source::Soundcloud => info.uri.clone().unwrap_or_default(),
            _ => info.identifier.clone(),
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Exception::new(
                "This track cannot be played: it has no page to resolve.",
                Severity::Common,
                "java.lang.IllegalArgumentException",
                &format!("no URL for {} track {}", info.source_name, info.identifier),
            ));
        }
        let query = Query::track(source, url);
        let value = match self.extract(&query, true).await {
            Ok(v) => v,
            Err(Outcome::Error(e)) => return Err(e),
            Err(Outcome::Empty) => {
                return Err(Exception::new(
                    "This track is no longer available.",
                    Severity::Common,
                    "YtDlpException",
                    "the lookup found nothing",
                ));
            }
            Err(Outcome::Unsupported) => {
                return Err(Exception::new(
                    "This track cannot be played.",
                    Severity::Common,
                    "YtDlpException",
                    "yt-dlp does not support this URL",
                ));
            }
        };
        stream_target(&value).ok_or_else(|| {
            Exception::new(
                "No playable audio format was found for this track.",
                Severity::Common,
                "YtDlpException",
                "yt-dlp returned no media URL",
            )
        })
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// yt-dlp's `cookies` field (`name=value; Domain=…; Path=/; …`) as a `Cookie` header value.
fn cookie_header(cookies: &str) -> Option<String> {
    const ATTRS: [&str; 8] = [
        "domain", "path", "expires", "max-age", "secure", "httponly", "samesite", "version",
    ];
    let pairs: Vec<&str> = cookies
        .split(';')
        .map(str::trim)
        .filter(|p| {
            let name = p
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            !p.is_empty() && p.contains('=') && !ATTRS.contains(&name.as_str())
        })
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

/// The stream of a resolved info dict (the first entry with media, for a list).
pub fn stream_target(v: &Value) -> Option<StreamTarget> {
    let v = if str_of(v, "url").is_some() && v.get("entries").is_none() {
        v
    } else {
        v.get("entries")?
            .as_array()?
            .iter()
            .find(|e| str_of(e, "url").is_some() && str_of(e, "_type") != Some("url"))?
    };
    let url = str_of(v, "url")?.to_string();
    let mut headers: BTreeMap<String, String> = v
        .get("http_headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    if let Some(c) = str_of(v, "cookies").and_then(cookie_header) {
        headers.insert("Cookie".into(), c);
    }
    let protocol = match str_of(v, "protocol").unwrap_or("https") {
        "http" | "https" => StreamProtocol::Http,
        "m3u8" | "m3u8_native" => StreamProtocol::Hls,
        "http_dash_segments" | "dash" | "dash_frag_urls" => StreamProtocol::Dash,
        other => StreamProtocol::Other(other.to_string()),
    };
    let codec = str_of(v, "acodec")
        .filter(|c| *c != "none")
        .map(|c| c.to_string());
    let live = v.get("is_live").and_then(Value::as_bool) == Some(true)
        || str_of(v, "live_status") == Some("is_live");
    Some(StreamTarget {
        url,
        headers: headers.into_iter().collect(),
        protocol,
        container: str_of(v, "ext").map(str::to_string),
        codec,
        is_live: live,
        content_length: v
            .get("filesize")
            .and_then(Value::as_u64)
            .or_else(|| v.get("filesize_approx").and_then(Value::as_u64)),
        duration_ms: v
            .get("duration")
            .and_then(Value::as_f64)
            .map(|d| (d * 1000.0) as i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_target_of_a_youtube_format() {
        let v = json!({
            "id": "dQw4w9WgXcQ", "duration": 213, "format_id": "251", "ext": "webm",
            "acodec": "opus", "vcodec": "none", "protocol": "https", "filesize": 3437753,
            "url": "https://rr1---sn.googlevideo.com/videoplayback?itag=251",
            "http_headers": {"User-Agent": "Mozilla/5.0", "Accept-Language": "en-us,en;q=0.5"},
            "cookies": "YSC=abc; Domain=.youtube.com; Path=/; Secure; VISITOR_INFO1_LIVE=xyz; Domain=.youtube.com; Path=/"
        });
        let t = stream_target(&v).unwrap();
        assert_eq!(
            t.url,
            "https://rr1---sn.googlevideo.com/videoplayback?itag=251"
        );
        assert_eq!(t.protocol, StreamProtocol::Http);
        assert!(t.is_opus());
        assert_eq!(t.mime(), Some("audio/webm"));
        assert_eq!(t.content_length, Some(3437753));
        assert_eq!(t.duration_ms, Some(213_000));
        assert!(!t.is_live);
        let h: BTreeMap<_, _> = t.headers.into_iter().collect();
        assert_eq!(h["User-Agent"], "Mozilla/5.0");
        assert_eq!(h["Cookie"], "YSC=abc; VISITOR_INFO1_LIVE=xyz");
    }

    #[test]
    fn stream_target_of_hls_live_and_lists() {
        let v = json!({"is_live": true, "protocol": "m3u8_native", "ext": "mp4", "acodec": "mp4a.40.2",
                       "url": "https://video-weaver.example/x.m3u8"});
        let t = stream_target(&v).unwrap();
        assert_eq!(t.protocol, StreamProtocol::Hls);
        assert!(t.is_live && !t.is_opus());
        assert_eq!(t.codec.as_deref(), Some("mp4a.40.2"));

        let list = json!({"_type": "playlist", "entries": [
            {"_type": "url", "url": "https://x/page"},
            {"url": "http://h/a.mp3", "ext": "mp3", "acodec": "mp3", "protocol": "http"}
        ]});
        assert_eq!(stream_target(&list).unwrap().url, "http://h/a.mp3");
        assert!(stream_target(&json!({"id": "x"})).is_none());
    }

    #[test]
    fn settings_follow_lavalink_config_defaults() {
        let s = YtDlpSettings::default();
        let r = s.route_config();
        assert_eq!(r.youtube_playlist_pages, 6);
        assert!(
            !r.niconico,
            "sources.nico is off by default in Lavalink's code"
        );
        assert!(r.youtube_search && r.soundcloud_search);
    }
}
