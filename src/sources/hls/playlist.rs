//! HLS playlists (parsed with `m3u8-rs`): a master playlist is seen through to the media
//! playlist of its best audio rendition; a media playlist becomes a list of segments with
//! absolute URLs, byte ranges, their initialisation section and their media sequence numbers.

use m3u8_rs::{AlternativeMediaType, KeyMethod, MasterPlaylist, Playlist, VariantStream};
use reqwest::Url;

/// A byte range of a resource: `(first byte, length)`.
pub type Range = (u64, u64);

/// The initialisation section of fMP4 segments (`EXT-X-MAP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSection {
    pub url: Url,
    pub range: Option<Range>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub url: Url,
    pub range: Option<Range>,
    /// Seconds (`EXTINF`).
    pub duration: f64,
    /// The media sequence number.
    pub sequence: u64,
    pub init: Option<InitSection>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    pub segments: Vec<Segment>,
    /// Seconds (`EXT-X-TARGETDURATION`).
    pub target_duration: f64,
    /// No more segments will be added (`EXT-X-ENDLIST`): a VOD playlist, or a live one that
    /// finished.
    pub ended: bool,
    /// A segment is encrypted (`EXT-X-KEY` with a method other than NONE).
    pub encrypted: bool,
}

impl MediaPlaylist {
    /// The total duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        (self.segments.iter().map(|s| s.duration).sum::<f64>() * 1000.0).round() as u64
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A master playlist: the URL of the media playlist chosen from it.
    Master(Url),
    Media(MediaPlaylist),
}

/// Parses the playlist `text` fetched from `base`.
pub fn parse(base: &Url, text: &str) -> Result<Parsed, String> {
    let playlist = m3u8_rs::parse_playlist_res(text.as_bytes())
        .map_err(|e| format!("the HLS playlist cannot be parsed: {e:?}"))?;
    match playlist {
        Playlist::MasterPlaylist(master) => {
            let uri = choose_audio(&master)
                .ok_or_else(|| "the master playlist lists no playable stream".to_string())?;
            let url = base
                .join(uri.trim())
                .map_err(|e| format!("bad media playlist location `{uri}`: {e}"))?;
            Ok(Parsed::Master(url))
        }
        Playlist::MediaPlaylist(media) => media_playlist(base, media).map(Parsed::Media),
    }
}

fn media_playlist(base: &Url, media: m3u8_rs::MediaPlaylist) -> Result<MediaPlaylist, String> {
    let ended =
        media.end_list || matches!(media.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    let mut segments = Vec::with_capacity(media.segments.len());
    let mut init: Option<InitSection> = None;
    let mut encrypted = false;
    // A byte range without an offset continues where the previous one of the same URL ended.
    let mut last_range_end: Option<(Url, u64)> = None;
    for (i, seg) in media.segments.into_iter().enumerate() {
        if let Some(key) = &seg.key {
            encrypted = !matches!(key.method, KeyMethod::None);
        }
        if let Some(map) = &seg.map {
            let url = base
                .join(map.uri.trim())
                .map_err(|e| format!("bad EXT-X-MAP location `{}`: {e}", map.uri))?;
            let range = map
                .byte_range
                .as_ref()
                .map(|r| (r.offset.unwrap_or(0), r.length));
            init = Some(InitSection { url, range });
        }
        let url = base
            .join(seg.uri.trim())
            .map_err(|e| format!("bad segment location `{}`: {e}", seg.uri))?;
        let range = seg.byte_range.as_ref().map(|r| {
            let start = r.offset.unwrap_or_else(|| match &last_range_end {
                Some((u, end)) if *u == url => *end,
                _ => 0,
            });
            (start, r.length)
        });
        last_range_end = range.map(|(s, l)| (url.clone(), s + l));
        segments.push(Segment {
            url,
            range,
            duration: f64::from(seg.duration).max(0.0),
            sequence: media.media_sequence + i as u64,
            init: init.clone(),
        });
    }
    Ok(MediaPlaylist {
        segments,
        target_duration: (media.target_duration as f64).max(1.0),
        ended,
        encrypted,
    })
}

/// Codec names (RFC 6381, as `CODECS` lists them) of video.
fn is_video_codec(codec: &str) -> bool {
    const VIDEO: [&str; 9] = [
        "avc1", "avc3", "hvc1", "hev1", "vp09", "vp8", "vp9", "av01", "dvh1",
    ];
    let codec = codec.trim().to_ascii_lowercase();
    VIDEO.iter().any(|v| codec.starts_with(v))
}

fn audio_only(v: &VariantStream) -> Option<bool> {
    let codecs = v.codecs.as_deref()?;
    Some(!codecs.split(',').any(is_video_codec))
}

/// The media playlist to play from a master playlist: the audio-only variant of the highest
/// bandwidth; else the default audio rendition (`EXT-X-MEDIA`) of the variants' audio group;
/// else the variant of the highest bandwidth among those that do not say what they carry; else
/// the variant of the lowest bandwidth (the least video to download along).
pub fn choose_audio(master: &MasterPlaylist) -> Option<String> {
    let variants: Vec<&VariantStream> = master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame && !v.uri.trim().is_empty())
        .collect();
    if let Some(v) = variants
        .iter()
        .filter(|v| audio_only(v) == Some(true))
        .max_by_key(|v| v.bandwidth)
    {
        return Some(v.uri.clone());
    }
    let group = variants
        .iter()
        .filter(|v| v.audio.is_some())
        .max_by_key(|v| v.bandwidth)
        .and_then(|v| v.audio.clone());
    let renditions: Vec<_> = master
        .alternatives
        .iter()
        .filter(|m| m.media_type == AlternativeMediaType::Audio && m.uri.is_some())
        .filter(|m| group.as_deref().is_none_or(|g| m.group_id == g))
        .collect();
    if let Some(m) = renditions
        .iter()
        .find(|m| m.default)
        .or_else(|| renditions.iter().find(|m| m.autoselect))
        .or_else(|| renditions.first())
    {
        return m.uri.clone();
    }
    if let Some(v) = variants
        .iter()
        .filter(|v| audio_only(v).is_none())
        .max_by_key(|v| v.bandwidth)
    {
        return Some(v.uri.clone());
    }
    variants
        .iter()
        .min_by_key(|v| v.bandwidth)
        .map(|v| v.uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://h/live/master.m3u8").unwrap()
    }

    fn master_choice(text: &str) -> String {
        match parse(&base(), text).unwrap() {
            Parsed::Master(url) => url.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn best_audio_only_variant() {
        let text = "#EXTM3U\n\
            #EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS=\"mp4a.40.5\"\nlow.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\"\nvideo.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=160000,CODECS=\"mp4a.40.2\"\nhigh.m3u8\n";
        assert_eq!(master_choice(text), "http://h/live/high.m3u8");
    }

    #[test]
    fn default_audio_rendition_of_the_group() {
        let text = "#EXTM3U\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"de\",DEFAULT=NO,URI=\"de.m3u8\"\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",DEFAULT=YES,URI=\"/audio/en.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"a\"\nvideo.m3u8\n";
        assert_eq!(master_choice(text), "http://h/audio/en.m3u8");
    }

    #[test]
    fn without_codecs_the_highest_unknown_then_the_lowest_video() {
        let text = "#EXTM3U\n\
            #EXT-X-STREAM-INF:BANDWIDTH=64000\na.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=128000\nb.m3u8\n";
        assert_eq!(master_choice(text), "http://h/live/b.m3u8");
        let text = "#EXTM3U\n\
            #EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\"\nhd.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.42e00a,mp4a.40.2\"\nsd.m3u8\n";
        assert_eq!(master_choice(text), "http://h/live/sd.m3u8");
    }

    #[test]
    fn media_playlist_segments() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:17\n\
            #EXT-X-MAP:URI=\"init.mp4\"\n\
            #EXTINF:4.0,\nseg17.m4s\n\
            #EXTINF:3.5,\n#EXT-X-BYTERANGE:1000@0\nall.aac\n\
            #EXTINF:2.5,\n#EXT-X-BYTERANGE:500\nall.aac\n";
        let Parsed::Media(m) = parse(&base(), text).unwrap() else {
            panic!()
        };
        assert!(!m.ended && !m.encrypted);
        assert_eq!(m.target_duration, 4.0);
        assert_eq!(m.duration_ms(), 10_000);
        let s: Vec<_> = m
            .segments
            .iter()
            .map(|s| (s.url.path().to_string(), s.range, s.sequence))
            .collect();
        assert_eq!(
            s,
            [
                ("/live/seg17.m4s".to_string(), None, 17),
                ("/live/all.aac".to_string(), Some((0, 1000)), 18),
                ("/live/all.aac".to_string(), Some((1000, 500)), 19),
            ]
        );
        assert_eq!(
            m.segments[2].init.as_ref().unwrap().url.as_str(),
            "http://h/live/init.mp4"
        );
        let vod = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2,\na.ts\n";
        let Parsed::Media(m) = parse(&base(), vod).unwrap() else {
            panic!()
        };
        assert!(m.ended);
        let enc = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXTINF:2,\na.ts\n";
        let Parsed::Media(m) = parse(&base(), enc).unwrap() else {
            panic!()
        };
        assert!(m.encrypted);
    }
}
