//! Which yt-dlp backed source claims an identifier, and the yt-dlp query that answers it.
//!
//! The patterns follow Lavalink's own source managers (YouTube plugin, SoundCloud, Bandcamp,
//! Twitch, Vimeo, Niconico), so an identifier is claimed here exactly when real Lavalink would
//! claim it, in the same order. Pure: no I/O.

use std::sync::LazyLock;

use regex::Regex;
use url::Url;

/// A source backed by yt-dlp. `Generic` covers every other site yt-dlp knows (the fallback for
/// `http(s)` URLs the http source could not play).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Youtube,
    Soundcloud,
    Bandcamp,
    Twitch,
    Vimeo,
    Niconico,
    Generic,
}

/// `sourceName` of tracks from sites without a Lavalink source. Real Lavalink cannot decode
/// them (as with any plugin's tracks); Acoustic plays them by resolving the stored URL again.
pub const GENERIC_SOURCE_NAME: &str = "ytdlp";

impl Source {
    /// The `sourceName` Lavalink uses.
    pub fn name(self) -> &'static str {
        match self {
            Source::Youtube => "youtube",
            Source::Soundcloud => "soundcloud",
            Source::Bandcamp => "bandcamp",
            Source::Twitch => "twitch",
            Source::Vimeo => "vimeo",
            Source::Niconico => "niconico",
            Source::Generic => GENERIC_SOURCE_NAME,
        }
    }

    pub fn from_name(name: &str) -> Option<Source> {
        Some(match name {
            "youtube" => Source::Youtube,
            "soundcloud" => Source::Soundcloud,
            "bandcamp" => Source::Bandcamp,
            "twitch" => Source::Twitch,
            "vimeo" => Source::Vimeo,
            "niconico" => Source::Niconico,
            GENERIC_SOURCE_NAME => Source::Generic,
            _ => return None,
        })
    }

    /// The source whose yt-dlp extractor produced an info dict, from its `ie_key` or
    /// `extractor_key` (e.g. `Youtube`, `YoutubeTab`, `SoundcloudSet`, `BandcampAlbum`).
    pub fn from_extractor_key(key: &str) -> Source {
        if key.starts_with("Youtube") {
            Source::Youtube
        } else if key.starts_with("Soundcloud") {
            Source::Soundcloud
        } else if key == "Bandcamp" || key == "BandcampAlbum" || key == "BandcampSearch" {
            Source::Bandcamp
        } else if key == "TwitchStream" {
            Source::Twitch
        } else if key == "Vimeo" {
            Source::Vimeo
        } else if key == "Niconico" {
            Source::Niconico
        } else {
            Source::Generic
        }
    }
}

/// What the router needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub youtube: bool,
    pub soundcloud: bool,
    pub bandcamp: bool,
    pub twitch: bool,
    pub vimeo: bool,
    pub niconico: bool,
    pub youtube_search: bool,
    pub soundcloud_search: bool,
    /// `youtubePlaylistLoadLimit`: pages of 100 videos.
    pub youtube_playlist_pages: u32,
    /// Results of `ytsearch:`, `ytmsearch:`, `scsearch:` and `bcsearch:`.
    pub search_results: u32,
    /// Upper bound on any other playlist (SoundCloud sets, Bandcamp albums, generic pages).
    pub max_playlist_entries: u32,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            youtube: true,
            soundcloud: true,
            bandcamp: true,
            twitch: true,
            vimeo: true,
            niconico: true,
            youtube_search: true,
            soundcloud_search: true,
            youtube_playlist_pages: 6,
            search_results: 10,
            max_playlist_entries: 1000,
        }
    }
}

/// How the answer is turned into a load result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// One track.
    Track,
    /// A playlist; the selected track is the one with this video id, else this 0-based index.
    Playlist {
        selected_id: Option<String>,
        selected_index: Option<usize>,
    },
    /// Search results.
    Search,
    /// A Twitch channel: live only; `channel` is the name in the URL (Lavalink's author).
    TwitchLive { channel: String },
    /// Whatever comes back: one item → track, several → playlist.
    Auto,
}

/// A question for yt-dlp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub source: Source,
    pub kind: Kind,
    /// What yt-dlp extracts: a URL or a search key such as `ytsearch10:…`.
    pub url: String,
    /// List entries without resolving each (`extract_flat`).
    pub flat: bool,
    /// Resolve flat entries that lack a title or duration (e.g. Bandcamp albums).
    pub complete: bool,
    /// 1-based first and last playlist entry to load.
    pub playlist_start: Option<u32>,
    pub playlist_end: Option<u32>,
}

impl Query {
    fn new(source: Source, kind: Kind, url: String) -> Query {
        Query {
            source,
            kind,
            url,
            flat: false,
            complete: false,
            playlist_start: None,
            playlist_end: None,
        }
    }

    fn list(mut self, end: Option<u32>, complete: bool) -> Query {
        self.flat = true;
        self.complete = complete;
        self.playlist_end = end;
        self
    }

    /// A single track resolved with its stream (the form `stream()` uses, so a load followed by
    /// a play shares one cached resolution).
    pub fn track(source: Source, url: String) -> Query {
        Query::new(source, Kind::Track, url)
    }
}

/// The router's answer for an identifier it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Claimed, but there is nothing to look up (Lavalink answers `empty`).
    Empty,
    Query(Query),
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static pattern")
}

static VIDEO_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9_-]{11}$"));
static PLAYLIST_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:PL|UU)[a-zA-Z0-9_-]+$"));
static YT_MAIN: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:http://|https://|)(?:www\.|m\.|music\.|)youtube\.com/.*"));
static YT_SHORT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:http://|https://|)(?:(?:www\.|m\.|music\.|)youtube\.com/(?:live|embed|shorts)|(?:www\.|)youtu\.be)/(.*)$",
    )
});
static SC_MOBILE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(?:http://|https://|)soundcloud\.app\.goo\.gl/([a-zA-Z0-9_-]+)/?(?:\?.*|)$")
});
static SC_SHORT: LazyLock<Regex> =
    LazyLock::new(|| re(r"^https://on\.soundcloud\.com/[a-zA-Z0-9_-]+/?(?:\?.*|)$"));
static SC_TRACK: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:http://|https://|)(?:www\.|)(?:m\.|)soundcloud\.com/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/?(?:\?.*|)$",
    )
});
static SC_UNLISTED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:http://|https://|)(?:www\.|)(?:m\.|)soundcloud\.com/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/s-([a-zA-Z0-9_-]+)(?:\?.*|)$",
    )
});
static SC_SET: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:http://|https://|)(?:www\.|)(?:m\.|)soundcloud\.com/([a-zA-Z0-9_-]+)/sets/([a-zA-Z0-9_:-]+)(?:/s-[a-zA-Z0-9_-]+)?/?(?:\?.*|)$",
    )
});
static SC_LIKES: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:http://|https://|)(?:www\.|)(?:m\.|)soundcloud\.com/([a-zA-Z0-9_-]+)/likes/?(?:\?.*|)$",
    )
});
static SC_SEARCH: LazyLock<Regex> =
    LazyLock::new(|| re(r"^scsearch\[([0-9]{1,9}),([0-9]{1,9})\]:\s*(.*?)\s*$"));
static BANDCAMP: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(https?://(?:[^./]+\.|)bandcamp\.com)/(track|album)/([a-zA-Z0-9_-]+)/?(?:\?.*|)$")
});
static TWITCH: LazyLock<Regex> =
    LazyLock::new(|| re(r"^https://(?:www\.|go\.|m\.)?twitch\.tv/([^/?#]+)$"));
static VIMEO: LazyLock<Regex> = LazyLock::new(|| re(r"^https?://vimeo\.com/([0-9]+)(?:\?.*|)$"));
static NICO: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(?:http://|https://|)(?:www\.|)nicovideo\.jp/watch/([a-z]{2}[0-9]+)(?:\?.*|)$")
});

/// Largest SoundCloud search window (Lavalink caps the limit at 200; the offset is capped here
/// so one request stays bounded).
pub const SOUNDCLOUD_MAX_SEARCH: u32 = 200;
pub const SOUNDCLOUD_MAX_OFFSET: u32 = 1000;

/// The route for `identifier`, or `None` when no enabled yt-dlp source claims it.
pub fn route(identifier: &str, cfg: &RouteConfig) -> Option<Route> {
    if cfg.youtube
        && let Some(r) = route_youtube(identifier, cfg)
    {
        return Some(r);
    }
    if cfg.soundcloud
        && let Some(r) = route_soundcloud(identifier, cfg)
    {
        return Some(r);
    }
    if cfg.bandcamp
        && let Some(r) = route_bandcamp(identifier, cfg)
    {
        return Some(r);
    }
    if cfg.twitch
        && let Some(c) = TWITCH.captures(identifier)
    {
        let channel = c[1].to_string();
        return Some(Route::Query(Query::new(
            Source::Twitch,
            Kind::TwitchLive { channel },
            identifier.to_string(),
        )));
    }
    if cfg.vimeo
        && let Some(c) = VIMEO.captures(identifier)
    {
        return Some(Route::Query(Query::track(Source::Vimeo, vimeo_url(&c[1]))));
    }
    if cfg.niconico
        && let Some(c) = NICO.captures(identifier)
    {
        return Some(Route::Query(Query::track(
            Source::Niconico,
            nico_url(&c[1]),
        )));
    }
    None
}

/// The watch URL of a YouTube video (also every YouTube track's `uri`).
pub fn youtube_url(video_id: &str) -> String {
    format!("https://www.youtube.com/watch?v={video_id}")
}

pub fn vimeo_url(id: &str) -> String {
    format!("https://vimeo.com/{id}")
}

pub fn nico_url(id: &str) -> String {
    format!("https://www.nicovideo.jp/watch/{id}")
}

fn with_scheme(s: &str) -> String {
    if s.starts_with("http://") || s.starts_with("https://") {
        s.to_string()
    } else {
        format!("https://{s}")
    }
}

fn search_query(source: Source, url: String) -> Route {
    Route::Query(Query {
        flat: true,
        ..Query::new(source, Kind::Search, url)
    })
}

fn route_youtube(identifier: &str, cfg: &RouteConfig) -> Option<Route> {
    if let Some(rest) = identifier.strip_prefix("ytsearch:") {
        if !cfg.youtube_search {
            return None;
        }
        let q = rest.trim();
        if q.is_empty() {
            return Some(Route::Empty);
        }
        return Some(search_query(
            Source::Youtube,
            format!("ytsearch{}:{q}", cfg.search_results),
        ));
    }
    if let Some(rest) = identifier.strip_prefix("ytmsearch:") {
        if !cfg.youtube_search {
            return None;
        }
        let q = rest.trim();
        if q.is_empty() {
            return Some(Route::Empty);
        }
        let encoded: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let mut query = search_query(
            Source::Youtube,
            format!("https://music.youtube.com/search?q={encoded}#songs"),
        );
        if let Route::Query(q) = &mut query {
            q.playlist_end = Some(cfg.search_results);
        }
        return Some(query);
    }
    if YT_MAIN.is_match(identifier)
        && let Ok(url) = Url::parse(&with_scheme(identifier))
    {
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        match url.path() {
            "/watch" => {
                if let Some(v) = param("v") {
                    return Some(route_video(&v, param("list"), cfg));
                }
            }
            "/playlist" => {
                if let Some(list) = param("list") {
                    if let Some(video) = list.strip_prefix("RD") {
                        return Some(route_mix(&list, video));
                    }
                    let index = param("index").and_then(|i| i.parse::<usize>().ok());
                    return Some(route_playlist(&list, None, index, cfg));
                }
            }
            _ => {}
        }
    }
    if VIDEO_ID.is_match(identifier) {
        return Some(Route::Query(Query::track(
            Source::Youtube,
            youtube_url(identifier),
        )));
    }
    if PLAYLIST_ID.is_match(identifier) {
        return Some(route_playlist(identifier, None, None, cfg));
    }
    if let Some(c) = YT_SHORT.captures(identifier) {
        return Some(route_video(&c[1], None, cfg));
    }
    None
}

fn route_video(video: &str, list: Option<String>, cfg: &RouteConfig) -> Route {
    let id: String = video.chars().take(11).collect();
    if !VIDEO_ID.is_match(&id) {
        return Route::Empty;
    }
    if let Some(list) = list {
        if list.starts_with("RD") {
            return route_mix(&list, &id);
        }
        // Liked videos, watch later and liked music need a signed-in user: load the video.
        if !list.starts_with("LL") && !list.starts_with("WL") && !list.starts_with("LM") {
            return route_playlist(&list, Some(id), None, cfg);
        }
    }
    Route::Query(Query::track(Source::Youtube, youtube_url(&id)))
}

fn route_playlist(
    list: &str,
    selected_id: Option<String>,
    selected_index: Option<usize>,
    cfg: &RouteConfig,
) -> Route {
    let encoded: String = url::form_urlencoded::byte_serialize(list.as_bytes()).collect();
    let pages = cfg.youtube_playlist_pages.max(1);
    Route::Query(
        Query::new(
            Source::Youtube,
            Kind::Playlist {
                selected_id,
                selected_index: selected_index.and_then(|i| i.checked_sub(1)),
            },
            format!("https://www.youtube.com/playlist?list={encoded}"),
        )
        .list(Some(pages.saturating_mul(100)), false),
    )
}

fn route_mix(list: &str, video: &str) -> Route {
    let id: String = video.chars().take(11).collect();
    if !VIDEO_ID.is_match(&id) {
        return Route::Empty;
    }
    let encoded: String = url::form_urlencoded::byte_serialize(list.as_bytes()).collect();
    Route::Query(
        Query::new(
            Source::Youtube,
            Kind::Playlist {
                selected_id: Some(id.clone()),
                selected_index: None,
            },
            format!("https://www.youtube.com/watch?v={id}&list={encoded}"),
        )
        .list(None, false),
    )
}

fn route_soundcloud(identifier: &str, cfg: &RouteConfig) -> Option<Route> {
    let max = Some(cfg.max_playlist_entries);
    if SC_MOBILE.is_match(identifier) || SC_SHORT.is_match(identifier) {
        // Short links redirect to a track or a set; yt-dlp follows the redirect.
        return Some(Route::Query(
            Query::new(Source::Soundcloud, Kind::Auto, with_scheme(identifier)).list(max, true),
        ));
    }
    if let Some(c) = SC_TRACK.captures(identifier)
        && &c[2] != "likes"
    {
        return Some(Route::Query(Query::track(
            Source::Soundcloud,
            with_scheme(identifier),
        )));
    }
    if SC_UNLISTED.is_match(identifier) {
        return Some(Route::Query(Query::track(
            Source::Soundcloud,
            with_scheme(identifier),
        )));
    }
    if SC_SET.is_match(identifier) || SC_LIKES.is_match(identifier) {
        return Some(Route::Query(
            Query::new(
                Source::Soundcloud,
                Kind::Playlist {
                    selected_id: None,
                    selected_index: None,
                },
                with_scheme(identifier),
            )
            .list(max, true),
        ));
    }
    if !cfg.soundcloud_search || !identifier.starts_with("scsearch") {
        return None;
    }
    if let Some(rest) = identifier.strip_prefix("scsearch:") {
        let q = rest.trim();
        if q.is_empty() {
            return Some(Route::Empty);
        }
        return Some(search_query(
            Source::Soundcloud,
            format!("scsearch{}:{q}", cfg.search_results),
        ));
    }
    let c = SC_SEARCH.captures(identifier)?;
    let offset: u32 = c[1].parse().ok()?;
    let limit: u32 = c[2].parse::<u32>().ok()?.min(SOUNDCLOUD_MAX_SEARCH);
    let q = c[3].trim();
    if q.is_empty() || limit == 0 || offset > SOUNDCLOUD_MAX_OFFSET {
        return Some(Route::Empty);
    }
    let mut route = search_query(
        Source::Soundcloud,
        format!("scsearch{}:{q}", offset + limit),
    );
    if let Route::Query(query) = &mut route {
        query.playlist_start = Some(offset + 1);
        query.playlist_end = Some(offset + limit);
    }
    Some(route)
}

fn route_bandcamp(identifier: &str, cfg: &RouteConfig) -> Option<Route> {
    if let Some(rest) = identifier.strip_prefix("bcsearch:") {
        let q = rest.trim();
        if q.is_empty() {
            return Some(Route::Empty);
        }
        return Some(search_query(
            Source::Bandcamp,
            format!("bcsearch{}:{q}", cfg.search_results),
        ));
    }
    let c = BANDCAMP.captures(identifier)?;
    if &c[2] == "album" {
        Some(Route::Query(
            Query::new(
                Source::Bandcamp,
                Kind::Playlist {
                    selected_id: None,
                    selected_index: None,
                },
                identifier.to_string(),
            )
            .list(Some(cfg.max_playlist_entries), true),
        ))
    } else {
        Some(Route::Query(Query::track(
            Source::Bandcamp,
            identifier.to_string(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RouteConfig {
        RouteConfig::default()
    }

    fn query(id: &str) -> Query {
        match route(id, &cfg()) {
            Some(Route::Query(q)) => q,
            other => panic!("{id}: expected a query, got {other:?}"),
        }
    }

    #[test]
    fn youtube_url_forms_resolve_to_the_video() {
        for id in [
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "http://youtube.com/watch?v=dQw4w9WgXcQ&t=42",
            "youtube.com/watch?feature=share&v=dQw4w9WgXcQ",
            "https://m.youtube.com/watch?v=dQw4w9WgXcQ",
            "https://music.youtube.com/watch?v=dQw4w9WgXcQ&si=abc",
            "https://youtu.be/dQw4w9WgXcQ",
            "https://youtu.be/dQw4w9WgXcQ?si=xyz",
            "https://www.youtube.com/shorts/dQw4w9WgXcQ",
            "https://www.youtube.com/live/dQw4w9WgXcQ?feature=share",
            "https://www.youtube.com/embed/dQw4w9WgXcQ",
            "dQw4w9WgXcQ",
            // liked videos / watch later lists need a user: the video alone is loaded
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=LL",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=WL",
        ] {
            let q = query(id);
            assert_eq!(q.source, Source::Youtube, "{id}");
            assert_eq!(q.kind, Kind::Track, "{id}");
            assert_eq!(q.url, "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "{id}");
            assert!(!q.flat);
        }
    }

    #[test]
    fn youtube_playlists_and_mixes() {
        let q = query("https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI");
        assert_eq!(
            q.url,
            "https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI"
        );
        assert!(q.flat);
        assert_eq!(q.playlist_end, Some(600), "6 pages of 100 by default");
        assert_eq!(
            q.kind,
            Kind::Playlist {
                selected_id: None,
                selected_index: None
            }
        );

        let q = query("https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLabcdefgh");
        assert_eq!(q.url, "https://www.youtube.com/playlist?list=PLabcdefgh");
        assert_eq!(
            q.kind,
            Kind::Playlist {
                selected_id: Some("dQw4w9WgXcQ".into()),
                selected_index: None
            }
        );

        let q = query("https://www.youtube.com/playlist?list=UUabcdef&index=3");
        assert_eq!(
            q.kind,
            Kind::Playlist {
                selected_id: None,
                selected_index: Some(2)
            }
        );

        // bare playlist id
        let q = query("PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI");
        assert!(q.url.ends_with("list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI"));

        // mixes keep the watch URL (yt-dlp needs the seed video)
        let q = query("https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=RDdQw4w9WgXcQ");
        assert_eq!(
            q.url,
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=RDdQw4w9WgXcQ"
        );
        assert!(
            matches!(q.kind, Kind::Playlist { selected_id: Some(ref v), .. } if v == "dQw4w9WgXcQ")
        );
        let q = query("https://www.youtube.com/playlist?list=RDdQw4w9WgXcQ");
        assert_eq!(
            q.url,
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=RDdQw4w9WgXcQ"
        );
    }

    #[test]
    fn playlist_limit_is_pages_of_100() {
        let c = RouteConfig {
            youtube_playlist_pages: 2,
            ..cfg()
        };
        let Some(Route::Query(q)) = route("https://www.youtube.com/playlist?list=PLx", &c) else {
            panic!()
        };
        assert_eq!(q.playlist_end, Some(200));
        let c = RouteConfig {
            youtube_playlist_pages: 0,
            ..cfg()
        };
        let Some(Route::Query(q)) = route("https://www.youtube.com/playlist?list=PLx", &c) else {
            panic!()
        };
        assert_eq!(q.playlist_end, Some(100), "the first page is always loaded");
    }

    #[test]
    fn bad_youtube_video_ids_are_claimed_but_empty() {
        assert_eq!(route("https://youtu.be/short", &cfg()), Some(Route::Empty));
        assert_eq!(
            route("https://www.youtube.com/watch?v=bad$id$here", &cfg()),
            Some(Route::Empty)
        );
        assert_eq!(route("ytsearch:   ", &cfg()), Some(Route::Empty));
    }

    #[test]
    fn searches_become_ytdlp_search_keys() {
        let q = query("ytsearch: never gonna give you up ");
        assert_eq!(q.url, "ytsearch10:never gonna give you up");
        assert_eq!(q.kind, Kind::Search);
        assert!(q.flat);

        let q = query("ytmsearch:daft punk & friends");
        assert_eq!(
            q.url,
            "https://music.youtube.com/search?q=daft+punk+%26+friends#songs"
        );
        assert_eq!(q.playlist_end, Some(10));

        let q = query("scsearch:lofi");
        assert_eq!(
            (q.source, q.url.as_str()),
            (Source::Soundcloud, "scsearch10:lofi")
        );

        let q = query("scsearch[20,5]: lofi beats");
        assert_eq!(q.url, "scsearch25:lofi beats");
        assert_eq!((q.playlist_start, q.playlist_end), (Some(21), Some(25)));

        let q = query("scsearch[0,500]:x");
        assert_eq!(q.url, "scsearch200:x", "limit capped at 200");

        let q = query("bcsearch:ambient");
        assert_eq!(
            (q.source, q.url.as_str()),
            (Source::Bandcamp, "bcsearch10:ambient")
        );
        assert_eq!(q.kind, Kind::Search);

        // not search syntax (11 characters would be a bare YouTube id, as in Lavalink)
        assert_eq!(route("scsearchfooo", &cfg()), None);
        assert_eq!(route("scsearch[1]:x", &cfg()), None);
    }

    #[test]
    fn disabled_search_falls_through() {
        let c = RouteConfig {
            youtube_search: false,
            soundcloud_search: false,
            ..cfg()
        };
        assert_eq!(route("ytsearch:a", &c), None);
        assert_eq!(route("ytmsearch:a", &c), None);
        assert_eq!(route("scsearch:a", &c), None);
        assert_eq!(route("scsearch[0,5]:a", &c), None);
        // URLs still load
        assert!(route("https://youtu.be/dQw4w9WgXcQ", &c).is_some());
    }

    #[test]
    fn disabled_sources_fall_through() {
        let c = RouteConfig {
            youtube: false,
            soundcloud: false,
            bandcamp: false,
            twitch: false,
            vimeo: false,
            niconico: false,
            ..cfg()
        };
        for id in [
            "dQw4w9WgXcQ",
            "ytsearch:a",
            "https://soundcloud.com/a/b",
            "scsearch:a",
            "https://x.bandcamp.com/track/y",
            "bcsearch:a",
            "https://www.twitch.tv/chan",
            "https://vimeo.com/123",
            "https://www.nicovideo.jp/watch/sm9",
        ] {
            assert_eq!(route(id, &c), None, "{id}");
        }
    }

    #[test]
    fn soundcloud_urls() {
        let q = query("https://soundcloud.com/artist/track-name");
        assert_eq!((q.source, &q.kind), (Source::Soundcloud, &Kind::Track));
        let q = query("soundcloud.com/artist/track-name?in=x");
        assert_eq!(q.url, "https://soundcloud.com/artist/track-name?in=x");
        let q = query("https://m.soundcloud.com/artist/track-name/s-AbCdE");
        assert_eq!(q.kind, Kind::Track);
        let q = query("https://soundcloud.com/artist/sets/my-set");
        assert!(matches!(q.kind, Kind::Playlist { .. }));
        assert!(q.flat && q.complete);
        let q = query("https://soundcloud.com/artist/likes");
        assert!(matches!(q.kind, Kind::Playlist { .. }));
        let q = query("https://on.soundcloud.com/AbCd123");
        assert_eq!(q.kind, Kind::Auto);
        let q = query("https://soundcloud.app.goo.gl/AbCd123");
        assert_eq!(q.kind, Kind::Auto);
        assert_eq!(route("https://soundcloud.com/artist", &cfg()), None);
    }

    #[test]
    fn other_sites() {
        let q = query("https://artist.bandcamp.com/track/song-slug");
        assert_eq!((q.source, &q.kind), (Source::Bandcamp, &Kind::Track));
        let q = query("https://artist.bandcamp.com/album/album-slug?from=x");
        assert!(matches!(q.kind, Kind::Playlist { .. }));
        assert!(q.complete);

        let q = query("https://www.twitch.tv/SomeChannel");
        assert_eq!(q.source, Source::Twitch);
        assert_eq!(
            q.kind,
            Kind::TwitchLive {
                channel: "SomeChannel".into()
            }
        );
        assert!(route("https://go.twitch.tv/chan", &cfg()).is_some());
        assert_eq!(
            route("https://www.twitch.tv/videos/123", &cfg()),
            None,
            "VODs"
        );
        assert_eq!(route("http://twitch.tv/chan", &cfg()), None, "https only");

        let q = query("https://vimeo.com/76979871?share=copy");
        assert_eq!(
            (q.source, q.url.as_str()),
            (Source::Vimeo, "https://vimeo.com/76979871")
        );
        assert_eq!(route("https://vimeo.com/channels/staffpicks", &cfg()), None);

        let q = query("nicovideo.jp/watch/sm9");
        assert_eq!(
            (q.source, q.url.as_str()),
            (Source::Niconico, "https://www.nicovideo.jp/watch/sm9")
        );
        assert!(route("https://www.nicovideo.jp/watch/so12345?ref=x", &cfg()).is_some());

        assert_eq!(route("https://example.com/song.mp3", &cfg()), None);
        assert_eq!(route("spsearch:abc", &cfg()), None);
        assert_eq!(route("hello", &cfg()), None);
    }

    #[test]
    fn extractor_keys_map_to_sources() {
        assert_eq!(Source::from_extractor_key("Youtube"), Source::Youtube);
        assert_eq!(Source::from_extractor_key("YoutubeTab"), Source::Youtube);
        assert_eq!(
            Source::from_extractor_key("SoundcloudSet"),
            Source::Soundcloud
        );
        assert_eq!(
            Source::from_extractor_key("BandcampAlbum"),
            Source::Bandcamp
        );
        assert_eq!(Source::from_extractor_key("TwitchStream"), Source::Twitch);
        assert_eq!(Source::from_extractor_key("TwitchVod"), Source::Generic);
        assert_eq!(Source::from_extractor_key("Generic"), Source::Generic);
        assert_eq!(
            Source::from_extractor_key("HTML5MediaEmbed"),
            Source::Generic
        );
        for s in [
            Source::Youtube,
            Source::Soundcloud,
            Source::Bandcamp,
            Source::Twitch,
            Source::Vimeo,
            Source::Niconico,
            Source::Generic,
        ] {
            assert_eq!(Source::from_name(s.name()), Some(s));
        }
    }
}
