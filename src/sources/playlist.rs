//! M3U and PLS playlists: parsing their text, and resolving their entries against the
//! playlist's own location. Pure: loading the entries is the sources' job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reqwest::Url;

use super::sniff::PlaylistKind;

/// At most this many entries of a playlist are loaded.
pub const MAX_ENTRIES: usize = 100;

/// The largest playlist text that is read.
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistEntry {
    /// As written: an absolute URL, or a path/URL relative to the playlist.
    pub location: String,
    /// The title the playlist gives it (`#EXTINF`, `TitleN=`).
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedPlaylist {
    /// `#PLAYLIST:` of an M3U.
    pub name: Option<String>,
    /// At most `MAX_ENTRIES`, in playlist order.
    pub entries: Vec<PlaylistEntry>,
    /// The text is an HLS playlist (`#EXT-X-` tags): its entries are segments or variant
    /// streams, not tracks.
    pub is_hls: bool,
}

pub fn parse(kind: PlaylistKind, text: &str) -> ParsedPlaylist {
    match kind {
        PlaylistKind::M3u => parse_m3u(text),
        PlaylistKind::Pls => parse_pls(text),
    }
}

pub fn parse_m3u(text: &str) -> ParsedPlaylist {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut playlist = ParsedPlaylist::default();
    let mut pending_title = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if let Some(tag) = line.strip_prefix('#') {
            if tag.len() >= 6 && tag[..6].eq_ignore_ascii_case("EXT-X-") {
                playlist.is_hls = true;
            } else if let Some(info) = strip_prefix_ignore_case(tag, "EXTINF:") {
                pending_title = extinf_title(info);
            } else if let Some(name) = strip_prefix_ignore_case(tag, "PLAYLIST:") {
                let name = name.trim();
                if !name.is_empty() {
                    playlist.name = Some(name.to_string());
                }
            }
            continue;
        }
        if playlist.entries.len() < MAX_ENTRIES {
            playlist.entries.push(PlaylistEntry {
                location: line.to_string(),
                title: pending_title.take(),
            });
        }
        pending_title = None;
    }
    playlist
}

/// The title of `#EXTINF:<duration> [attributes],<title>`: everything after the first comma that
/// is not inside a quoted attribute value.
fn extinf_title(info: &str) -> Option<String> {
    let mut quoted = false;
    for (i, c) in info.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                let title = info[i + 1..].trim();
                return (!title.is_empty()).then(|| title.to_string());
            }
            _ => {}
        }
    }
    None
}

pub fn parse_pls(text: &str) -> ParsedPlaylist {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut files: BTreeMap<u32, String> = BTreeMap::new();
    let mut titles: BTreeMap<u32, String> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if let Some(n) = key.strip_prefix("file").and_then(|n| n.parse().ok()) {
            files.insert(n, value.to_string());
        } else if let Some(n) = key.strip_prefix("title").and_then(|n| n.parse().ok()) {
            titles.insert(n, value.to_string());
        }
    }
    let entries = files
        .into_iter()
        .take(MAX_ENTRIES)
        .map(|(n, location)| PlaylistEntry {
            location,
            title: titles.remove(&n),
        })
        .collect();
    ParsedPlaylist {
        name: None,
        entries,
        is_hls: false,
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s.is_char_boundary(prefix.len()))
        .then(|| s.split_at(prefix.len()))
        .filter(|(head, _)| head.eq_ignore_ascii_case(prefix))
        .map(|(_, rest)| rest)
}

/// Parses an absolute http(s) URL (`icy://` read as `http://`).
pub fn parse_http_url(s: &str) -> Option<Url> {
    let s = s.trim();
    let url = match strip_prefix_ignore_case(s, "icy://") {
        Some(rest) => Url::parse(&format!("http://{rest}")),
        None => Url::parse(s),
    }
    .ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some()).then_some(url)
}

/// Resolves an entry of a playlist fetched from `base`. Only http(s) results are allowed: a
/// remote playlist must not reach local files.
pub fn resolve_against_url(base: &Url, location: &str) -> Option<Url> {
    let location = location.trim();
    if has_scheme(location) {
        return parse_http_url(location);
    }
    let url = base.join(location).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(url)
}

/// Where an entry of a local playlist points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryLocation {
    Url(Url),
    Path(PathBuf),
}

/// Resolves an entry of the local playlist file `playlist`: URLs stay URLs (`file:` URLs become
/// paths), relative paths are taken from the playlist's folder.
pub fn resolve_against_file(playlist: &Path, location: &str) -> Option<EntryLocation> {
    let location = location.trim();
    if has_scheme(location) {
        if let Some(url) = parse_http_url(location) {
            return Some(EntryLocation::Url(url));
        }
        let url = Url::parse(location).ok()?;
        return (url.scheme() == "file")
            .then(|| url.to_file_path().ok())
            .flatten()
            .map(EntryLocation::Path);
    }
    let path = Path::new(location);
    let dir = playlist.parent().unwrap_or(Path::new("/"));
    Some(EntryLocation::Path(dir.join(path)))
}

/// `scheme:` at the start (two letters at least, so a Windows drive letter is not one).
fn has_scheme(s: &str) -> bool {
    match s.find(':') {
        Some(i) if i >= 2 => s[..i]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')),
        _ => false,
    }
}

/// A playlist's name when it names none: its file name (from the URL path, decoded).
pub fn name_from_url(url: &Url) -> String {
    url.path_segments()
        .and_then(|mut segments| segments.next_back().map(str::to_string))
        .map(|s| {
            percent_encoding::percent_decode_str(&s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| url.to_string())
}

pub fn name_from_path(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(location: &str, title: Option<&str>) -> PlaylistEntry {
        PlaylistEntry {
            location: location.into(),
            title: title.map(Into::into),
        }
    }

    #[test]
    fn extended_m3u() {
        let text = "\u{FEFF}#EXTM3U\r\n#PLAYLIST: Road trip \r\n\
            #EXTINF:123 tvg-name=\"a, b\",Artist - Song, live\r\n\
            song one.mp3\r\n\
            # a comment\r\n\
            \r\n\
            http://example.com/two.flac\r\n\
            #EXTINF:-1,\r\n\
            ../three.ogg\r\n";
        let p = parse_m3u(text);
        assert_eq!(p.name.as_deref(), Some("Road trip"));
        assert!(!p.is_hls);
        assert_eq!(
            p.entries,
            vec![
                entry("song one.mp3", Some("Artist - Song, live")),
                entry("http://example.com/two.flac", None),
                entry("../three.ogg", None),
            ]
        );
    }

    #[test]
    fn hls_is_recognised() {
        let p = parse_m3u("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nseg0.ts\n");
        assert!(p.is_hls);
        let p = parse_m3u("#EXTM3U\n#ext-x-stream-inf:BANDWIDTH=1\nlow.m3u8\n");
        assert!(p.is_hls);
    }

    #[test]
    fn entry_count_is_bounded() {
        let text: String = (0..MAX_ENTRIES + 50)
            .map(|i| format!("{i}.mp3\n"))
            .collect();
        let p = parse_m3u(&text);
        assert_eq!(p.entries.len(), MAX_ENTRIES);
        assert_eq!(p.entries[0].location, "0.mp3");
        let pls: String = (1..=MAX_ENTRIES + 5)
            .map(|i| format!("File{i}=http://h/{i}\n"))
            .collect();
        assert_eq!(parse_pls(&pls).entries.len(), MAX_ENTRIES);
    }

    #[test]
    fn pls_in_entry_order() {
        let text = "[playlist]\nNumberOfEntries=3\nFile2=http://b/\nTitle2=Second\n\
                    file1 = http://a/\nTitle1=First\nFile10=ten.mp3\nLength1=-1\nVersion=2\n";
        let p = parse_pls(text);
        assert_eq!(p.name, None);
        assert_eq!(
            p.entries,
            vec![
                entry("http://a/", Some("First")),
                entry("http://b/", Some("Second")),
                entry("ten.mp3", None),
            ]
        );
    }

    #[test]
    fn url_resolution() {
        let base = Url::parse("http://host:8080/lists/mix.m3u?x=1").unwrap();
        let r = |l| resolve_against_url(&base, l).map(|u| u.to_string());
        assert_eq!(r("a.mp3").as_deref(), Some("http://host:8080/lists/a.mp3"));
        assert_eq!(
            r("../b c.mp3").as_deref(),
            Some("http://host:8080/b%20c.mp3")
        );
        assert_eq!(r("/root.mp3").as_deref(), Some("http://host:8080/root.mp3"));
        assert_eq!(r("//other/x.mp3").as_deref(), Some("http://other/x.mp3"));
        assert_eq!(r("https://s/y.ogg").as_deref(), Some("https://s/y.ogg"));
        assert_eq!(
            r("icy://radio:8000/live").as_deref(),
            Some("http://radio:8000/live")
        );
        // A remote playlist cannot point at local files or other schemes.
        assert_eq!(r("file:///etc/passwd"), None);
        assert_eq!(r("ftp://x/y"), None);
    }

    #[test]
    fn file_resolution() {
        let pl = Path::new("/music/lists/mix.m3u");
        assert_eq!(
            resolve_against_file(pl, "a.mp3"),
            Some(EntryLocation::Path("/music/lists/a.mp3".into()))
        );
        assert_eq!(
            resolve_against_file(pl, "/abs/b.mp3"),
            Some(EntryLocation::Path("/abs/b.mp3".into()))
        );
        assert_eq!(
            resolve_against_file(pl, "file:///music/c.flac"),
            Some(EntryLocation::Path("/music/c.flac".into()))
        );
        assert_eq!(
            resolve_against_file(pl, "http://h/d.mp3"),
            Some(EntryLocation::Url(Url::parse("http://h/d.mp3").unwrap()))
        );
        assert_eq!(resolve_against_file(pl, "gopher://h/x"), None);
    }

    #[test]
    fn names() {
        let u = Url::parse("http://h/lists/My%20Mix.m3u?token=1").unwrap();
        assert_eq!(name_from_url(&u), "My Mix.m3u");
        let u = Url::parse("http://h/").unwrap();
        assert_eq!(name_from_url(&u), "http://h/");
        assert_eq!(name_from_path(Path::new("/a/b/radio.pls")), "radio.pls");
    }

    #[test]
    fn http_urls() {
        assert!(parse_http_url("http://a/b").is_some());
        assert!(parse_http_url("HTTPS://a/b").is_some());
        assert_eq!(
            parse_http_url("ICY://a:1/b").unwrap().as_str(),
            "http://a:1/b"
        );
        assert!(parse_http_url("http://").is_none());
        assert!(parse_http_url("http://exa mple.com/").is_none());
        assert!(parse_http_url("mailto:x@y").is_none());
    }
}
