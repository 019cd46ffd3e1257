//! yt-dlp info JSON → Lavalink tracks and load results, with `sourceName`, `identifier`, `uri`
//! and `artworkUrl` set the way Lavalink's own sources set them, so that encoded tracks
//! round-trip between Acoustic and real Lavalink. Pure: no I/O.
//!
//! Per source (what Lavalink stores → where it comes from here):
//! - `youtube`: identifier = the 11-char video id, uri = `https://www.youtube.com/watch?v=<id>`,
//!   author = channel name, artwork = `https://i.ytimg.com/vi/<id>/maxresdefault.jpg` when YouTube
//!   has that size (else `mqdefault.jpg`), live → length `i64::MAX` and `isStream`.
//! - `soundcloud`: identifier = lavaplayer's format identifier, `O:`/`U:`/`M:` + the API lookup
//!   URL of the best transcoding (Opus HLS, MP3 HLS, progressive MP3), else the numeric track id
//!   (which lavaplayer also accepts: it re-loads by `uri`); uri = permalink; length =
//!   `full_duration`; artwork = `artwork_url` (or the avatar) with `large.jpg` → `original.jpg`;
//!   isrc from the publisher metadata.
//! - `bandcamp`: identifier = uri = the track page URL; artwork `https://f4.bcbits.com/img/a<id>_1.png`.
//! - `twitch`: identifier = uri = the channel URL as given; author = the channel name from it;
//!   title = the stream title; always a stream.
//! - `vimeo`: identifier = the numeric id, uri = `https://vimeo.com/<id>`.
//! - `niconico`: identifier = the video id (`sm…`), uri = `https://www.nicovideo.jp/watch/<id>`.
//! - `ytdlp` (any other site): identifier = uri = the page (or media) URL.

use serde_json::Value;

use crate::protocol::track::{TrackInfo, UNKNOWN_LENGTH};
use crate::protocol::track_codec::SourceDetails;
use crate::sources::{LoadedItem, TrackData};

use super::route::{Kind, Query, Source, nico_url, vimeo_url, youtube_url};

const UNKNOWN_TITLE: &str = "Unknown title";
const UNKNOWN_ARTIST: &str = "Unknown artist";

/// Options that change how results are mapped.
#[derive(Debug, Clone, Copy, Default)]
pub struct MapOptions {
    /// `soundcloudFilterOutPreviewTracks`: leave out SoundCloud tracks only playable as 30 s previews.
    pub filter_soundcloud_previews: bool,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn first_str<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| str_field(v, k))
}

fn num_field(v: &Value, key: &str) -> Option<f64> {
    v.get(key)
        .and_then(Value::as_f64)
        .filter(|n| n.is_finite() && *n >= 0.0)
}

fn is_live(v: &Value) -> bool {
    v.get("is_live").and_then(Value::as_bool) == Some(true)
        || str_field(v, "live_status") == Some("is_live")
}

fn seconds_to_ms(seconds: f64) -> i64 {
    // lavaplayer truncates (`(long) (seconds * 1000.0)`)
    (seconds * 1000.0) as i64
}

/// Which source an info dict or entry belongs to.
pub fn source_of(v: &Value, hint: Source) -> Source {
    if hint != Source::Generic {
        return hint;
    }
    match first_str(v, &["ie_key", "extractor_key"]) {
        Some(key) => Source::from_extractor_key(key),
        None => Source::Generic,
    }
}

/// The fields of a track as a source reads them; `track()` fills in Lavalink's defaults.
struct Fields<'a> {
    identifier: String,
    author: Option<&'a str>,
    title: Option<&'a str>,
    length: Option<i64>,
    is_stream: bool,
    uri: Option<String>,
    artwork: Option<String>,
    isrc: Option<String>,
}

fn track(source: Source, f: Fields<'_>) -> TrackData {
    let length = if f.is_stream {
        UNKNOWN_LENGTH
    } else {
        f.length.unwrap_or(UNKNOWN_LENGTH)
    };
    TrackData {
        info: TrackInfo {
            identifier: f.identifier,
            is_seekable: !f.is_stream,
            author: f.author.unwrap_or(UNKNOWN_ARTIST).to_string(),
            length,
            is_stream: f.is_stream,
            position: 0,
            title: f.title.unwrap_or(UNKNOWN_TITLE).to_string(),
            uri: f.uri,
            artwork_url: f.artwork,
            isrc: f.isrc,
            source_name: source.name().to_string(),
        },
        details: SourceDetails::None,
    }
}

fn thumbnails(v: &Value) -> impl Iterator<Item = &str> {
    v.get("thumbnails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("url").and_then(Value::as_str))
        .chain(str_field(v, "thumbnail"))
}

fn youtube_track(v: &Value) -> Option<TrackData> {
    let id = str_field(v, "id")?;
    if id.len() != 11
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let live = is_live(v);
    let has_maxres = thumbnails(v).any(|u| u.contains("maxresdefault"));
    let artwork = if has_maxres {
        format!("https://i.ytimg.com/vi/{id}/maxresdefault.jpg")
    } else {
        format!("https://i.ytimg.com/vi/{id}/mqdefault.jpg")
    };
    Some(track(
        Source::Youtube,
        Fields {
            identifier: id.to_string(),
            author: first_str(v, &["channel", "uploader", "artist", "creator"]),
            title: first_str(v, &["title", "fulltitle"]),
            length: num_field(v, "duration").map(seconds_to_ms),
            is_stream: live,
            uri: Some(youtube_url(id)),
            artwork: Some(artwork),
            isrc: str_field(v, "isrc").map(str::to_string),
        },
    ))
}

/// lavaplayer's SoundCloud format identifier: the best transcoding's lookup URL, prefixed by
/// its kind (`O:` Opus over HLS, `U:` MP3 over HLS, `M:` progressive MP3).
fn soundcloud_format_identifier(sc: &Value) -> Option<String> {
    let transcodings = sc.get("transcodings")?.as_array()?;
    let kinds = [
        ("hls", "audio/ogg", "O:"),
        ("hls", "audio/mpeg", "U:"),
        ("progressive", "audio/mpeg", "M:"),
    ];
    for (protocol, mime, prefix) in kinds {
        for t in transcodings {
            if str_field(t, "protocol") == Some(protocol)
                && str_field(t, "mime_type").is_some_and(|m| m.contains(mime))
                && let Some(url) = str_field(t, "url")
            {
                return Some(format!("{prefix}{url}"));
            }
        }
    }
    None
}

fn soundcloud_is_preview(v: &Value) -> bool {
    let Some(sc) = v.get("acoustic").and_then(|a| a.get("soundcloud")) else {
        return false;
    };
    if str_field(sc, "policy") == Some("SNIP") {
        return true;
    }
    let ts = sc.get("transcodings").and_then(Value::as_array);
    ts.is_some_and(|ts| {
        !ts.is_empty()
            && ts
                .iter()
                .all(|t| t.get("snipped").and_then(Value::as_bool) == Some(true))
    })
}

fn soundcloud_track(v: &Value) -> Option<TrackData> {
    let sc = v
        .get("acoustic")
        .and_then(|a| a.get("soundcloud"))
        .unwrap_or(&Value::Null);
    let numeric_id = sc
        .get("id")
        .and_then(|i| {
            i.as_u64()
                .map(|n| n.to_string())
                .or(i.as_str().map(str::to_string))
        })
        .or_else(|| str_field(v, "id").map(str::to_string))?;
    let identifier = soundcloud_format_identifier(sc).unwrap_or(numeric_id);
    let length = sc
        .get("full_duration")
        .and_then(Value::as_f64)
        .map(|ms| ms as i64)
        .or_else(|| num_field(v, "duration").map(seconds_to_ms));
    let uri = first_str(sc, &["permalink_url"])
        .or_else(|| first_str(v, &["webpage_url", "url"]))
        .map(str::to_string);
    let artwork = first_str(sc, &["artwork_url", "avatar_url"])
        .map(|a| a.replace("large.jpg", "original.jpg"))
        .or_else(|| {
            v.get("thumbnails")
                .and_then(Value::as_array)
                .and_then(|ts| ts.iter().find(|t| str_field(t, "id") == Some("original")))
                .and_then(|t| str_field(t, "url"))
                .map(str::to_string)
        })
        .or_else(|| str_field(v, "thumbnail").map(str::to_string));
    Some(track(
        Source::Soundcloud,
        Fields {
            identifier,
            author: first_str(sc, &["username"]).or_else(|| first_str(v, &["uploader", "artist"])),
            title: first_str(sc, &["title"]).or_else(|| first_str(v, &["title", "fulltitle"])),
            length,
            is_stream: false,
            uri,
            artwork,
            isrc: first_str(sc, &["isrc"])
                .or_else(|| str_field(v, "isrc"))
                .map(str::to_string),
        },
    ))
}

fn bandcamp_artwork(v: &Value) -> Option<String> {
    thumbnails(v).find_map(|u| {
        let i = u.find("/img/a")?;
        let digits: String = u[i + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        (!digits.is_empty()).then(|| format!("https://f4.bcbits.com/img/a{digits:0>10}_1.png"))
    })
}

fn bandcamp_track(v: &Value) -> Option<TrackData> {
    let url = first_str(v, &["webpage_url", "url"])?;
    let url = url.split('?').next().unwrap_or(url).to_string();
    Some(track(
        Source::Bandcamp,
        Fields {
            identifier: url.clone(),
            author: first_str(v, &["artist", "album_artist", "uploader"]),
            title: first_str(v, &["track", "title", "fulltitle"]),
            length: num_field(v, "duration").map(seconds_to_ms),
            is_stream: false,
            uri: Some(url),
            artwork: bandcamp_artwork(v).or_else(|| str_field(v, "thumbnail").map(str::to_string)),
            isrc: str_field(v, "isrc").map(str::to_string),
        },
    ))
}

fn twitch_track(v: &Value, channel_url: &str, channel: &str) -> TrackData {
    track(
        Source::Twitch,
        Fields {
            identifier: channel_url.to_string(),
            author: Some(channel),
            title: first_str(v, &["description", "title"]),
            length: None,
            is_stream: true,
            uri: Some(channel_url.to_string()),
            artwork: str_field(v, "thumbnail").map(str::to_string),
            isrc: None,
        },
    )
}

fn vimeo_track(v: &Value) -> Option<TrackData> {
    let id = str_field(v, "id").filter(|id| id.bytes().all(|b| b.is_ascii_digit()))?;
    Some(track(
        Source::Vimeo,
        Fields {
            identifier: id.to_string(),
            author: first_str(v, &["uploader", "channel"]),
            title: first_str(v, &["title", "fulltitle"]),
            length: num_field(v, "duration").map(seconds_to_ms),
            is_stream: is_live(v),
            uri: Some(vimeo_url(id)),
            artwork: str_field(v, "thumbnail").map(str::to_string),
            isrc: None,
        },
    ))
}

fn nico_track(v: &Value) -> Option<TrackData> {
    let id = str_field(v, "id")?;
    Some(track(
        Source::Niconico,
        Fields {
            identifier: id.to_string(),
            author: first_str(v, &["uploader", "channel"]),
            title: first_str(v, &["title", "fulltitle"]),
            length: num_field(v, "duration").map(seconds_to_ms),
            is_stream: is_live(v),
            uri: Some(nico_url(id)),
            artwork: str_field(v, "thumbnail").map(str::to_string),
            isrc: None,
        },
    ))
}

/// A track of a site without a Lavalink source. `page` is the URL of the page the entry came
/// from, if it is a playlist entry: entries that share their page's URL are identified by their
/// media URL instead, so each can be resolved again on its own.
fn generic_track(v: &Value, page: Option<&str>) -> Option<TrackData> {
    let webpage = str_field(v, "webpage_url");
    let identifier = match (webpage, page) {
        (Some(w), Some(p)) if w == p => str_field(v, "url").or(Some(w)),
        (Some(w), _) => Some(w),
        (None, _) => first_str(v, &["url", "original_url"]),
    }?;
    let live = is_live(v);
    let length = num_field(v, "duration").map(seconds_to_ms);
    // Unknown duration means a stream, as for the http source.
    Some(track(
        Source::Generic,
        Fields {
            identifier: identifier.to_string(),
            author: first_str(v, &["artist", "creator", "uploader", "channel"]),
            title: first_str(v, &["track", "title", "fulltitle"]),
            length,
            is_stream: live || length.is_none(),
            uri: Some(identifier.to_string()),
            artwork: str_field(v, "thumbnail")
                .or_else(|| thumbnails(v).last())
                .map(str::to_string),
            isrc: str_field(v, "isrc").map(str::to_string),
        },
    ))
}

/// One track from an info dict or playlist entry; `None` for entries that are not playable
/// tracks of that source (deleted videos, channels in search results, …).
pub fn track_from(v: &Value, hint: Source, page: Option<&str>) -> Option<TrackData> {
    match source_of(v, hint) {
        Source::Youtube => youtube_track(v),
        Source::Soundcloud => soundcloud_track(v),
        Source::Bandcamp => bandcamp_track(v),
        Source::Vimeo => vimeo_track(v),
        Source::Niconico => nico_track(v),
        // A Twitch track needs the channel URL it was loaded from (see `map_result`).
        Source::Twitch | Source::Generic => generic_track(v, page),
    }
}

fn is_list(v: &Value) -> bool {
    matches!(
        str_field(v, "_type"),
        Some("playlist") | Some("multi_video")
    ) || v.get("entries").is_some_and(Value::is_array)
}

fn youtube_entry_playable(e: &Value) -> bool {
    let title = str_field(e, "title").unwrap_or("");
    if title == "[Deleted video]" || title == "[Private video]" {
        return false;
    }
    !matches!(
        str_field(e, "availability"),
        Some("private") | Some("needs_auth") | Some("subscriber_only") | Some("premium_only")
    )
}

/// Maps a successful extraction for `query` to a load result. `identifier` is what the client
/// asked for. Entries of a disabled source are left out via `allowed`.
pub fn map_result(
    info: &Value,
    query: &Query,
    identifier: &str,
    options: MapOptions,
    allowed: &dyn Fn(Source) -> bool,
) -> LoadedItem {
    if let Kind::TwitchLive { channel } = &query.kind {
        if !is_live(info) {
            return LoadedItem::Empty;
        }
        return LoadedItem::Track(twitch_track(info, identifier, channel));
    }

    let page = str_field(info, "webpage_url");
    let entry_tracks = |info: &Value, search: bool| -> Vec<TrackData> {
        let entries = info.get("entries").and_then(Value::as_array);
        entries
            .into_iter()
            .flatten()
            .filter(|e| !e.is_null())
            .filter(|e| {
                let source = source_of(e, query.source);
                if !allowed(source) {
                    return false;
                }
                if source == Source::Youtube {
                    if !youtube_entry_playable(e) {
                        return false;
                    }
                    // Lavalink's YouTube search leaves out live streams and premieres.
                    if search
                        && (is_live(e)
                            || str_field(e, "live_status") == Some("is_upcoming")
                            || num_field(e, "duration").is_none())
                    {
                        return false;
                    }
                }
                if source == Source::Soundcloud
                    && options.filter_soundcloud_previews
                    && soundcloud_is_preview(e)
                {
                    return false;
                }
                true
            })
            .filter_map(|e| track_from(e, query.source, page))
            .collect()
    };

    match &query.kind {
        Kind::Search => {
            let tracks = if is_list(info) {
                entry_tracks(info, true)
            } else {
                track_from(info, query.source, None).into_iter().collect()
            };
            if tracks.is_empty() {
                LoadedItem::Empty
            } else {
                LoadedItem::Search(tracks)
            }
        }
        Kind::Track if !is_list(info) => {
            if !allowed(source_of(info, query.source)) {
                return LoadedItem::Empty;
            }
            match track_from(info, query.source, None) {
                Some(t) => LoadedItem::Track(t),
                None => LoadedItem::Empty,
            }
        }
        Kind::Track | Kind::Auto | Kind::Playlist { .. } => {
            if !is_list(info) {
                if !allowed(source_of(info, query.source)) {
                    return LoadedItem::Empty;
                }
                return match track_from(info, query.source, None) {
                    Some(t) => LoadedItem::Track(t),
                    None => LoadedItem::Empty,
                };
            }
            let tracks = entry_tracks(info, false);
            if tracks.is_empty() {
                return LoadedItem::Empty;
            }
            if matches!(query.kind, Kind::Auto) && tracks.len() == 1 {
                return LoadedItem::Track(tracks.into_iter().next().expect("one track"));
            }
            let selected = match &query.kind {
                Kind::Playlist {
                    selected_id,
                    selected_index,
                } => selected_id
                    .as_deref()
                    .and_then(|id| tracks.iter().position(|t| t.info.identifier == id))
                    .or(selected_index.filter(|i| *i < tracks.len())),
                _ => None,
            };
            let name = first_str(info, &["title", "album", "id"])
                .unwrap_or("Unknown playlist")
                .to_string();
            LoadedItem::Playlist {
                name,
                selected_track: selected.map_or(-1, |i| i as i32),
                tracks,
            }
        }
        Kind::TwitchLive { .. } => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolver::route::{Route, RouteConfig, route};
    use serde_json::json;

    fn q(identifier: &str) -> Query {
        match route(identifier, &RouteConfig::default()) {
            Some(Route::Query(q)) => q,
            other => panic!("{other:?}"),
        }
    }

    fn all(_: Source) -> bool {
        true
    }

    fn load(info: &Value, identifier: &str) -> LoadedItem {
        map_result(
            info,
            &q(identifier),
            identifier,
            MapOptions::default(),
            &all,
        )
    }

    fn one(item: LoadedItem) -> TrackInfo {
        match item {
            LoadedItem::Track(t) => {
                assert_eq!(t.details, SourceDetails::None);
                t.info
            }
            _ => panic!("expected a track"),
        }
    }

    /// Trimmed yt-dlp output for a YouTube video (fields as yt-dlp names them).
    fn youtube_video() -> Value {
        json!({
            "_type": "video", "id": "dQw4w9WgXcQ",
            "title": "Rick Astley - Never Gonna Give You Up (Official Music Video)",
            "channel": "Rick Astley", "uploader": "Rick Astley", "uploader_id": "@RickAstleyYT",
            "duration": 213, "live_status": "not_live", "is_live": false,
            "webpage_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "extractor": "youtube", "extractor_key": "Youtube",
            "thumbnails": [
                {"url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg", "id": "10"},
                {"url": "https://i.ytimg.com/vi_webp/dQw4w9WgXcQ/maxresdefault.webp", "id": "40"}
            ],
            "format_id": "251", "ext": "webm", "acodec": "opus", "vcodec": "none",
            "protocol": "https", "url": "https://rr1---sn-x.googlevideo.com/videoplayback?expire=1&itag=251",
            "http_headers": {"User-Agent": "Mozilla/5.0", "Accept": "*/*"}
        })
    }

    #[test]
    fn youtube_video_matches_lavalink() {
        let info = one(load(&youtube_video(), "https://youtu.be/dQw4w9WgXcQ"));
        assert_eq!(
            info,
            TrackInfo {
                identifier: "dQw4w9WgXcQ".into(),
                is_seekable: true,
                author: "Rick Astley".into(),
                length: 213_000,
                is_stream: false,
                position: 0,
                title: "Rick Astley - Never Gonna Give You Up (Official Music Video)".into(),
                uri: Some("https://www.youtube.com/watch?v=dQw4w9WgXcQ".into()),
                artwork_url: Some("https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg".into()),
                isrc: None,
                source_name: "youtube".into(),
            }
        );
        // Encodes byte for byte like the track real Lavalink's YouTube source made (a published
        // version-3 example): the two round-trip.
        let t = TrackData {
            info,
            details: SourceDetails::None,
        };
        let encoded = crate::protocol::track_codec::encode_track(&t.info, &t.details);
        assert_eq!(
            encoded,
            "QAAA2QMAPFJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAgKE9mZmljaWFsIE11c2ljIFZpZGVvKQALUmljayBBc3RsZXkAAAAAAANACAALZFF3NHc5V2dYY1EAAQAraHR0cHM6Ly93d3cueW91dHViZS5jb20vd2F0Y2g/dj1kUXc0dzlXZ1hjUQEANGh0dHBzOi8vaS55dGltZy5jb20vdmkvZFF3NHc5V2dYY1EvbWF4cmVzZGVmYXVsdC5qcGcAAAd5b3V0dWJlAAAAAAAAAAA="
        );
    }

    #[test]
    fn youtube_live_is_an_unseekable_stream() {
        let mut v = youtube_video();
        v["is_live"] = json!(true);
        v["live_status"] = json!("is_live");
        v["duration"] = Value::Null;
        v["thumbnails"] = json!([{"url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault_live.jpg"}]);
        let info = one(load(&v, "dQw4w9WgXcQ"));
        assert!(info.is_stream);
        assert!(!info.is_seekable);
        assert_eq!(info.length, i64::MAX);
        assert_eq!(
            info.artwork_url.as_deref(),
            Some("https://i.ytimg.com/vi/dQw4w9WgXcQ/mqdefault.jpg")
        );
    }

    /// Flat playlist as yt-dlp's YoutubeTab extractor returns it.
    fn youtube_playlist() -> Value {
        let entry = |id: &str, title: &str, duration: Value, channel: Value| {
            json!({"_type": "url", "ie_key": "Youtube", "id": id, "url": format!("https://www.youtube.com/watch?v={id}"),
                   "title": title, "duration": duration, "channel": channel, "uploader": channel,
                   "thumbnails": [{"url": format!("https://i.ytimg.com/vi/{id}/hqdefault.jpg?sqp=x")}],
                   "extractor_key": "YoutubeTab"})
        };
        json!({
            "_type": "playlist", "id": "PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI", "title": "Best of 80s",
            "extractor_key": "YoutubeTab", "webpage_url": "https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI",
            "entries": [
                entry("aaaaaaaaaaa", "First", json!(200), json!("Chan A")),
                entry("bbbbbbbbbbb", "[Deleted video]", Value::Null, Value::Null),
                entry("dQw4w9WgXcQ", "Never Gonna", json!(213.0), json!("Rick Astley")),
                entry("ccccccccccc", "[Private video]", Value::Null, Value::Null),
                entry("ddddddddddd", "Last", json!(61.5), json!("Chan D"))
            ]
        })
    }

    #[test]
    fn youtube_playlist_with_selected_video() {
        let item = load(
            &youtube_playlist(),
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI",
        );
        let LoadedItem::Playlist {
            name,
            selected_track,
            tracks,
        } = item
        else {
            panic!("expected a playlist")
        };
        assert_eq!(name, "Best of 80s");
        let ids: Vec<_> = tracks.iter().map(|t| t.info.identifier.as_str()).collect();
        assert_eq!(
            ids,
            ["aaaaaaaaaaa", "dQw4w9WgXcQ", "ddddddddddd"],
            "deleted/private left out"
        );
        assert_eq!(selected_track, 1);
        assert_eq!(tracks[2].info.length, 61_500);
        assert_eq!(tracks[1].info.author, "Rick Astley");
        assert_eq!(
            tracks[0].info.artwork_url.as_deref(),
            Some("https://i.ytimg.com/vi/aaaaaaaaaaa/mqdefault.jpg")
        );

        let LoadedItem::Playlist { selected_track, .. } = load(
            &youtube_playlist(),
            "https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI",
        ) else {
            panic!()
        };
        assert_eq!(selected_track, -1);

        let LoadedItem::Playlist { selected_track, .. } = load(
            &youtube_playlist(),
            "https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI&index=3",
        ) else {
            panic!()
        };
        assert_eq!(selected_track, 2);
    }

    #[test]
    fn youtube_search_results_skip_live_and_non_videos() {
        let search = json!({
            "_type": "playlist", "id": "lofi", "title": "lofi", "extractor_key": "YoutubeSearch",
            "entries": [
                {"_type": "url", "ie_key": "Youtube", "id": "jfKfPfyJRdk", "title": "lofi hip hop radio", "channel": "Lofi Girl", "duration": null, "live_status": "is_live"},
                {"_type": "url", "ie_key": "Youtube", "id": "5qap5aO4i9A", "title": "lofi beats", "channel": "Beats", "duration": 3600},
                {"_type": "url", "ie_key": "YoutubeTab", "id": "UCSJ4gkVC6NrvII8umztf0Ow", "title": "Lofi Girl", "channel": "Lofi Girl"}
            ]
        });
        let LoadedItem::Search(tracks) = load(&search, "ytsearch:lofi") else {
            panic!("expected search results")
        };
        assert_eq!(tracks.len(), 1);
        assert_eq!(tracks[0].info.identifier, "5qap5aO4i9A");
        assert_eq!(tracks[0].info.length, 3_600_000);

        let empty = json!({"_type": "playlist", "id": "x", "entries": []});
        assert!(matches!(
            load(&empty, "ytsearch:nothing at all"),
            LoadedItem::Empty
        ));
    }

    fn soundcloud_track_json() -> Value {
        json!({
            "_type": "video", "id": "1234567", "title": "Night Drive", "uploader": "synthwaver",
            "duration": 30.0, "webpage_url": "https://soundcloud.com/synthwaver/night-drive",
            "extractor_key": "Soundcloud",
            "thumbnails": [{"id": "t500x500", "url": "https://i1.sndcdn.com/artworks-000-abc-t500x500.jpg"}],
            "acoustic": {"soundcloud": {
                "id": 1234567, "title": "Night Drive", "username": "synthwaver",
                "permalink_url": "https://soundcloud.com/synthwaver/night-drive",
                "artwork_url": "https://i1.sndcdn.com/artworks-000-abc-large.jpg",
                "avatar_url": "https://i1.sndcdn.com/avatars-000-large.jpg",
                "full_duration": 245123, "duration": 245123, "policy": "ALLOW",
                "isrc": "USRC17607839",
                "transcodings": [
                    {"protocol": "progressive", "mime_type": "audio/mpeg", "url": "https://api-v2.soundcloud.com/media/soundcloud:tracks:1234567/aaa/stream/progressive", "snipped": false},
                    {"protocol": "hls", "mime_type": "audio/mpeg", "url": "https://api-v2.soundcloud.com/media/soundcloud:tracks:1234567/bbb/stream/hls", "snipped": false},
                    {"protocol": "hls", "mime_type": "audio/ogg; codecs=\"opus\"", "url": "https://api-v2.soundcloud.com/media/soundcloud:tracks:1234567/ccc/stream/hls", "snipped": false}
                ]
            }}
        })
    }

    #[test]
    fn soundcloud_track_matches_lavaplayer() {
        let info = one(load(
            &soundcloud_track_json(),
            "https://soundcloud.com/synthwaver/night-drive",
        ));
        assert_eq!(info.source_name, "soundcloud");
        assert_eq!(
            info.identifier,
            "O:https://api-v2.soundcloud.com/media/soundcloud:tracks:1234567/ccc/stream/hls"
        );
        assert_eq!(info.length, 245_123, "full_duration, not yt-dlp's duration");
        assert_eq!(info.author, "synthwaver");
        assert_eq!(
            info.uri.as_deref(),
            Some("https://soundcloud.com/synthwaver/night-drive")
        );
        assert_eq!(
            info.artwork_url.as_deref(),
            Some("https://i1.sndcdn.com/artworks-000-abc-original.jpg")
        );
        assert_eq!(info.isrc.as_deref(), Some("USRC17607839"));
        assert!(!info.is_stream);

        // without Opus: MP3 over HLS; without any known transcoding: the numeric id
        let mut v = soundcloud_track_json();
        v["acoustic"]["soundcloud"]["transcodings"]
            .as_array_mut()
            .unwrap()
            .pop();
        assert!(
            one(load(&v, "https://soundcloud.com/a/b"))
                .identifier
                .starts_with("U:https://")
        );
        v["acoustic"]["soundcloud"]["transcodings"] = json!([]);
        assert_eq!(
            one(load(&v, "https://soundcloud.com/a/b")).identifier,
            "1234567"
        );
        // without our hook's data at all (older/newer yt-dlp): yt-dlp's own fields
        let mut v = soundcloud_track_json();
        v.as_object_mut().unwrap().remove("acoustic");
        let info = one(load(&v, "https://soundcloud.com/a/b"));
        assert_eq!((info.identifier.as_str(), info.length), ("1234567", 30_000));
    }

    #[test]
    fn soundcloud_preview_filter() {
        let mut preview = soundcloud_track_json();
        preview["acoustic"]["soundcloud"]["policy"] = json!("SNIP");
        preview["id"] = json!("999");
        let search =
            json!({"_type": "playlist", "id": "q", "entries": [soundcloud_track_json(), preview]});
        let ident = "scsearch:night drive";
        let LoadedItem::Search(all_tracks) = load(&search, ident) else {
            panic!()
        };
        assert_eq!(all_tracks.len(), 2);
        let filtered = map_result(
            &search,
            &q(ident),
            ident,
            MapOptions {
                filter_soundcloud_previews: true,
            },
            &all,
        );
        let LoadedItem::Search(tracks) = filtered else {
            panic!()
        };
        assert_eq!(tracks.len(), 1);
    }

    #[test]
    fn bandcamp_album_is_a_playlist() {
        let entry = |slug: &str, title: &str, dur: f64| {
            json!({"_type": "video", "id": "1", "title": title, "track": title, "artist": "The Band",
                   "duration": dur, "webpage_url": format!("https://theband.bandcamp.com/track/{slug}"),
                   "extractor_key": "Bandcamp",
                   "thumbnails": [{"url": "https://f4.bcbits.com/img/a1234567_10.jpg"}]})
        };
        let album = json!({
            "_type": "playlist", "id": "best-album", "title": "Best Album", "extractor_key": "BandcampAlbum",
            "webpage_url": "https://theband.bandcamp.com/album/best-album",
            "entries": [entry("one", "One", 180.5), entry("two", "Two", 201.999)]
        });
        let item = load(&album, "https://theband.bandcamp.com/album/best-album");
        let LoadedItem::Playlist {
            name,
            selected_track,
            tracks,
        } = item
        else {
            panic!()
        };
        assert_eq!((name.as_str(), selected_track), ("Best Album", -1));
        let t = &tracks[1].info;
        assert_eq!(t.identifier, "https://theband.bandcamp.com/track/two");
        assert_eq!(
            t.uri.as_deref(),
            Some("https://theband.bandcamp.com/track/two")
        );
        assert_eq!(t.length, 201_999, "truncated like lavaplayer");
        assert_eq!(t.author, "The Band");
        assert_eq!(
            t.artwork_url.as_deref(),
            Some("https://f4.bcbits.com/img/a0001234567_1.png")
        );
        assert_eq!(t.source_name, "bandcamp");
    }

    #[test]
    fn bandcamp_search_results_have_unknown_length_but_are_not_streams() {
        let search = json!({"_type": "playlist", "id": "q", "entries": [
            {"_type": "url", "ie_key": "Bandcamp", "url": "https://a.bandcamp.com/track/x", "webpage_url": "https://a.bandcamp.com/track/x",
             "title": "X", "uploader": "A", "artist": "A", "thumbnail": "https://f4.bcbits.com/img/a0987654321_7.jpg"}
        ]});
        let LoadedItem::Search(tracks) = load(&search, "bcsearch:x") else {
            panic!()
        };
        let t = &tracks[0].info;
        assert_eq!(t.length, i64::MAX);
        assert!(!t.is_stream);
        assert_eq!(t.identifier, "https://a.bandcamp.com/track/x");
    }

    #[test]
    fn twitch_live_and_offline() {
        let live = json!({
            "_type": "video", "id": "40500071752", "title": "monstercat 2026-12-04 18:00",
            "description": "Monstercat Radio 24/7", "uploader": "Monstercat", "uploader_id": "monstercat",
            "is_live": true, "live_status": "is_live", "extractor_key": "TwitchStream",
            "thumbnail": "https://static-cdn.jtvnw.net/previews-ttv/live_user_monstercat.jpg",
            "protocol": "m3u8_native", "url": "https://video-weaver.example/v1/playlist/x.m3u8"
        });
        let id = "https://www.twitch.tv/monstercat";
        let info = one(load(&live, id));
        assert_eq!(info.identifier, id);
        assert_eq!(info.uri.as_deref(), Some(id));
        assert_eq!(info.author, "monstercat");
        assert_eq!(info.title, "Monstercat Radio 24/7");
        assert!(info.is_stream && !info.is_seekable);
        assert_eq!(info.length, i64::MAX);
        assert_eq!(info.source_name, "twitch");

        let mut offline = live.clone();
        offline["is_live"] = json!(false);
        offline["live_status"] = json!("was_live");
        assert!(matches!(load(&offline, id), LoadedItem::Empty));
    }

    #[test]
    fn vimeo_and_niconico() {
        let v = json!({"_type": "video", "id": "76979871", "title": "The New Vimeo Player", "uploader": "Vimeo",
                       "duration": 62, "extractor_key": "Vimeo", "thumbnail": "https://i.vimeocdn.com/video/452001751-x"});
        let info = one(load(&v, "https://vimeo.com/76979871"));
        assert_eq!(
            (info.identifier.as_str(), info.uri.as_deref(), info.length),
            ("76979871", Some("https://vimeo.com/76979871"), 62_000)
        );
        let n = json!({"_type": "video", "id": "sm9", "title": "Bad Apple", "uploader": "nico",
                       "duration": 320, "extractor_key": "Niconico"});
        let info = one(load(&n, "https://www.nicovideo.jp/watch/sm9"));
        assert_eq!(info.identifier, "sm9");
        assert_eq!(
            info.uri.as_deref(),
            Some("https://www.nicovideo.jp/watch/sm9")
        );
        assert_eq!(info.source_name, "niconico");
    }

    fn generic_query() -> Query {
        Query {
            source: Source::Generic,
            kind: Kind::Auto,
            url: String::new(),
            flat: true,
            complete: true,
            playlist_start: None,
            playlist_end: None,
        }
    }

    #[test]
    fn generic_pages_and_embedded_known_sites() {
        let page = json!({"_type": "video", "id": "page-1", "title": "Tone (1)", "extractor_key": "HTML5MediaEmbed",
                          "webpage_url": "http://127.0.0.1:1/page.html", "url": "http://127.0.0.1:1/tone.wav"});
        let item = map_result(
            &page,
            &generic_query(),
            "http://127.0.0.1:1/page.html",
            MapOptions::default(),
            &all,
        );
        let info = one(item);
        assert_eq!(info.source_name, "ytdlp");
        assert_eq!(info.identifier, "http://127.0.0.1:1/page.html");
        assert_eq!(info.author, "Unknown artist");
        assert!(info.is_stream, "no duration known");

        // two players on one page: a playlist whose entries are identified by their media URL
        let multi = json!({"_type": "playlist", "id": "multi", "title": "Two", "extractor_key": "Generic",
        "webpage_url": "http://h/multi.html",
        "entries": [
            {"_type": "video", "id": "m1", "title": "Two (1)", "webpage_url": "http://h/multi.html", "url": "http://h/a.mp3", "duration": 2.0, "extractor_key": "HTML5MediaEmbed"},
            {"_type": "video", "id": "m2", "title": "Two (2)", "webpage_url": "http://h/multi.html", "url": "http://h/b.mp3", "duration": 2.0, "extractor_key": "HTML5MediaEmbed"}
        ]});
        let LoadedItem::Playlist { tracks, .. } = map_result(
            &multi,
            &generic_query(),
            "http://h/multi.html",
            MapOptions::default(),
            &all,
        ) else {
            panic!()
        };
        assert_eq!(tracks[0].info.identifier, "http://h/a.mp3");
        assert_eq!(tracks[1].info.length, 2000);
        assert!(!tracks[1].info.is_stream);

        // a page embedding a YouTube video maps to a youtube track — unless youtube is disabled
        let embed = youtube_video();
        let item = map_result(
            &embed,
            &generic_query(),
            "http://blog/post",
            MapOptions::default(),
            &all,
        );
        assert_eq!(one(item).source_name, "youtube");
        let no_youtube = |s: Source| s != Source::Youtube;
        let item = map_result(
            &embed,
            &generic_query(),
            "http://blog/post",
            MapOptions::default(),
            &no_youtube,
        );
        assert!(matches!(item, LoadedItem::Empty));
    }
}
