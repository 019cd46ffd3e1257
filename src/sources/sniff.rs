//! Container detection by content sniffing: the first bytes of a file (after any ID3v2 tags)
//! decide the container; the `Content-Type` (http) or file extension (local) only helps where
//! the bytes alone are ambiguous (a plain list of URLs, an MP3 stream joined mid-frame).

/// The containers the sources can hand to the demuxer. The names are Lavalink's probe names,
/// stored in track blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp3,
    Flac,
    Wav,
    Ogg,
    Mp4,
    Matroska,
    Adts,
}

impl Container {
    pub const ALL: [Container; 7] = [
        Container::Mp3,
        Container::Flac,
        Container::Wav,
        Container::Ogg,
        Container::Mp4,
        Container::Matroska,
        Container::Adts,
    ];

    /// Lavalink's probe name (track blob detail field).
    pub fn probe_name(self) -> &'static str {
        match self {
            Container::Mp3 => "mp3",
            Container::Flac => "flac",
            Container::Wav => "wav",
            Container::Ogg => "ogg",
            Container::Mp4 => "mp4",
            Container::Matroska => "matroska/webm",
            Container::Adts => "adts",
        }
    }

    /// Parses probe info as stored in a blob: the probe name, optionally followed by `|` and
    /// parameters (ignored here).
    pub fn from_probe_info(info: &str) -> Option<Container> {
        let name = info.split('|').next().unwrap_or(info);
        Container::ALL.into_iter().find(|c| c.probe_name() == name)
    }

    /// The container a file extension names (as yt-dlp reports a format's `ext`).
    pub fn from_extension(ext: &str) -> Option<Container> {
        Some(
            match ext.trim_start_matches('.').to_ascii_lowercase().as_str() {
                "mp3" => Container::Mp3,
                "flac" => Container::Flac,
                "wav" | "wave" => Container::Wav,
                "ogg" | "oga" | "opus" => Container::Ogg,
                "m4a" | "mp4" | "m4b" | "mov" => Container::Mp4,
                "webm" | "weba" | "mkv" | "mka" => Container::Matroska,
                "aac" => Container::Adts,
                _ => return None,
            },
        )
    }

    /// A file extension naming the container, as a demuxer hint.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Mp3 => "mp3",
            Container::Flac => "flac",
            Container::Wav => "wav",
            Container::Ogg => "ogg",
            Container::Mp4 => "m4a",
            Container::Matroska => "webm",
            Container::Adts => "aac",
        }
    }

    /// A human name for messages.
    pub fn label(self) -> &'static str {
        match self {
            Container::Mp3 => "MP3",
            Container::Flac => "FLAC",
            Container::Wav => "WAV",
            Container::Ogg => "Ogg",
            Container::Mp4 => "MP4",
            Container::Matroska => "Matroska/WebM",
            Container::Adts => "ADTS AAC",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    M3u,
    Pls,
}

/// What the first bytes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed {
    /// A container we can demux. `audio_offset` is where its data starts in the head that was
    /// sniffed (non-zero only for an MP3/ADTS stream found after leading junk).
    Media {
        container: Container,
        audio_offset: usize,
        /// For MP3: the bit rate of the first frame (bit/s), for estimating a duration.
        mp3_bitrate: Option<u32>,
    },
    /// A known kind of media that cannot be played; the text says what it is.
    Unsupported(&'static str),
    Playlist(PlaylistKind),
    /// HTML, XML or other markup: a web page, not media.
    Markup,
    Unknown,
}

/// Hints from outside the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaHint {
    /// The MIME type, lower case, without parameters.
    pub content_type: Option<String>,
    /// The file extension, lower case, without the dot.
    pub extension: Option<String>,
}

impl MediaHint {
    pub fn from_content_type(value: Option<&str>) -> Self {
        let content_type = value
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|v| !v.is_empty());
        MediaHint {
            content_type,
            extension: None,
        }
    }

    pub fn with_extension(mut self, extension: Option<&str>) -> Self {
        self.extension = extension
            .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
            .filter(|e| !e.is_empty());
        self
    }

    fn content_type_is(&self, types: &[&str]) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|t| types.contains(&t))
    }

    fn extension_is(&self, exts: &[&str]) -> bool {
        self.extension.as_deref().is_some_and(|e| exts.contains(&e))
    }

    fn says_m3u(&self) -> bool {
        self.content_type_is(&[
            "audio/mpegurl",
            "audio/x-mpegurl",
            "application/mpegurl",
            "application/x-mpegurl",
            "application/vnd.apple.mpegurl",
            "application/vnd.apple.mpegurl.audio",
        ]) || self.extension_is(&["m3u", "m3u8"])
    }

    fn says_pls(&self) -> bool {
        self.content_type_is(&["audio/x-scpls", "audio/scpls", "application/pls+xml"])
            || self.extension_is(&["pls"])
    }

    fn says_mp3(&self) -> bool {
        self.content_type_is(&["audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg"])
            || self.extension_is(&["mp3"])
    }

    fn says_aac(&self) -> bool {
        self.content_type_is(&["audio/aac", "audio/aacp", "audio/x-aac"])
            || self.extension_is(&["aac"])
    }
}

/// The length of the ID3v2 tag at the start of `head` (header, body and footer), if any.
pub fn id3v2_len(head: &[u8]) -> Option<u64> {
    if head.len() < 10 || &head[..3] != b"ID3" || head[3] == 0xFF || head[4] == 0xFF {
        return None;
    }
    let size = &head[6..10];
    if size.iter().any(|b| b & 0x80 != 0) {
        return None;
    }
    let body = size
        .iter()
        .fold(0u64, |acc, &b| (acc << 7) | u64::from(b & 0x7F));
    let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + body + footer)
}

/// Classifies `head`: the first bytes of the media (after any ID3v2 tags).
/// `after_id3` says an ID3v2 tag preceded them (such a file is audio, not text).
pub fn sniff(head: &[u8], hint: &MediaHint, after_id3: bool) -> Sniffed {
    if let Some(found) = sniff_binary(head) {
        return found;
    }
    // A stream joined mid-frame, or junk before the first frame: look further only when the
    // server or the file name says what to look for.
    if (after_id3 || hint.says_mp3())
        && let Some(offset) = find_mpeg_audio(head)
    {
        return mpeg_audio_at(head, offset);
    }
    if (after_id3 || hint.says_aac())
        && let Some(offset) = find_adts(head)
    {
        return Sniffed::Media {
            container: Container::Adts,
            audio_offset: offset,
            mp3_bitrate: None,
        };
    }
    if !after_id3 && let Some(text) = as_text(head) {
        return sniff_text(text, hint);
    }
    Sniffed::Unknown
}

fn sniff_binary(head: &[u8]) -> Option<Sniffed> {
    let media = |container| Sniffed::Media {
        container,
        audio_offset: 0,
        mp3_bitrate: None,
    };
    if head.starts_with(b"fLaC") {
        return Some(media(Container::Flac));
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        return Some(media(Container::Wav));
    }
    if head.len() >= 12 && (&head[..4] == b"RIFF" || &head[..4] == b"RF64") {
        return Some(Sniffed::Unsupported("a RIFF file that is not WAVE"));
    }
    if head.starts_with(b"OggS") {
        return Some(media(Container::Ogg));
    }
    if head.len() >= 8 && &head[4..8] == b"ftyp" {
        return Some(media(Container::Mp4));
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some(media(Container::Matroska));
    }
    if head.starts_with(b"FORM") || head.starts_with(b"caff") {
        return Some(Sniffed::Unsupported("an AIFF/CAF file"));
    }
    if head.len() >= 377 && head[0] == 0x47 && head[188] == 0x47 && head[376] == 0x47 {
        return Some(Sniffed::Unsupported("an MPEG transport stream"));
    }
    if let Some(header) = MpegAudioHeader::parse(head) {
        // Require the next frame to follow where this one says it ends (when the head reaches
        // that far), so a stray 0xFF byte is not taken for audio.
        if next_frame_agrees(head, 0, &header) {
            return Some(mpeg_audio_at(head, 0));
        }
    }
    if let Some(len) = adts_frame_len(head)
        && (head.len() < len + 7 || adts_frame_len(&head[len..]).is_some())
    {
        return Some(media(Container::Adts));
    }
    None
}

fn mpeg_audio_at(head: &[u8], offset: usize) -> Sniffed {
    match MpegAudioHeader::parse(&head[offset..]) {
        Some(h) if h.layer == 3 => Sniffed::Media {
            container: Container::Mp3,
            audio_offset: offset,
            mp3_bitrate: Some(h.bitrate),
        },
        _ => Sniffed::Unsupported("MPEG audio layer I/II"),
    }
}

fn next_frame_agrees(head: &[u8], offset: usize, header: &MpegAudioHeader) -> bool {
    let next = offset + header.frame_len;
    if next + 4 > head.len() {
        return true;
    }
    MpegAudioHeader::parse(&head[next..]).is_some_and(|n| n.layer == header.layer)
}

fn find_mpeg_audio(head: &[u8]) -> Option<usize> {
    (0..head.len().saturating_sub(4)).find(|&i| {
        MpegAudioHeader::parse(&head[i..]).is_some_and(|h| {
            let next = i + h.frame_len;
            // Mid-stream, insist on seeing the next frame.
            next + 4 <= head.len()
                && MpegAudioHeader::parse(&head[next..]).is_some_and(|n| n.layer == h.layer)
        })
    })
}

fn find_adts(head: &[u8]) -> Option<usize> {
    (0..head.len().saturating_sub(7)).find(|&i| {
        adts_frame_len(&head[i..]).is_some_and(|len| {
            let next = i + len;
            next + 7 <= head.len() && adts_frame_len(&head[next..]).is_some()
        })
    })
}

/// An MPEG audio frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpegAudioHeader {
    /// 1, 2 or 3.
    pub layer: u8,
    /// Bits per second.
    pub bitrate: u32,
    pub sample_rate: u32,
    /// Whole frame length in bytes, header included.
    pub frame_len: usize,
}

impl MpegAudioHeader {
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < 4 || b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
            return None;
        }
        let version = (b[1] >> 3) & 3; // 0: MPEG 2.5, 1: reserved, 2: MPEG 2, 3: MPEG 1
        let layer = match (b[1] >> 1) & 3 {
            1 => 3,
            2 => 2,
            3 => 1,
            _ => return None,
        };
        let bitrate_index = usize::from(b[2] >> 4);
        let rate_index = usize::from((b[2] >> 2) & 3);
        let padding = usize::from((b[2] >> 1) & 1);
        if version == 1 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
            return None;
        }
        const V1: [[u32; 15]; 3] = [
            [
                0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
            ],
            [
                0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
            ],
            [
                0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
            ],
        ];
        const V2: [[u32; 15]; 2] = [
            [
                0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
            ],
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        ];
        let mpeg1 = version == 3;
        let kbps = if mpeg1 {
            V1[usize::from(layer) - 1][bitrate_index]
        } else if layer == 1 {
            V2[0][bitrate_index]
        } else {
            V2[1][bitrate_index]
        };
        let base_rate = [44100, 48000, 32000][rate_index];
        let sample_rate = match version {
            3 => base_rate,
            2 => base_rate / 2,
            _ => base_rate / 4,
        };
        let bitrate = kbps * 1000;
        let frame_len = match layer {
            1 => (12 * bitrate / sample_rate) as usize * 4 + padding * 4,
            2 => (144 * bitrate / sample_rate) as usize + padding,
            _ if mpeg1 => (144 * bitrate / sample_rate) as usize + padding,
            _ => (72 * bitrate / sample_rate) as usize + padding,
        };
        if frame_len < 4 {
            return None;
        }
        Some(MpegAudioHeader {
            layer,
            bitrate,
            sample_rate,
            frame_len,
        })
    }
}

/// The length of the ADTS frame whose header starts `b`, if `b` starts with one.
fn adts_frame_len(b: &[u8]) -> Option<usize> {
    if b.len() < 7 || b[0] != 0xFF || b[1] & 0xF6 != 0xF0 {
        return None;
    }
    let rate_index = (b[2] >> 2) & 0x0F;
    if rate_index >= 13 {
        return None;
    }
    let len = (usize::from(b[3] & 0x03) << 11) | (usize::from(b[4]) << 3) | usize::from(b[5] >> 5);
    let header_len = if b[1] & 1 == 0 { 9 } else { 7 };
    (len > header_len).then_some(len)
}

/// `head` as text, if it looks like text (UTF-8, possibly cut mid-character, no NULs).
fn as_text(head: &[u8]) -> Option<&str> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if head.contains(&0) {
        return None;
    }
    match std::str::from_utf8(head) {
        Ok(s) => Some(s),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    }
}

fn sniff_text(text: &str, hint: &MediaHint) -> Sniffed {
    let trimmed = text.trim_start();
    let lower: String = trimmed.chars().take(64).collect::<String>().to_lowercase();
    if lower.starts_with("#extm3u") {
        return Sniffed::Playlist(PlaylistKind::M3u);
    }
    if lower.starts_with("[playlist]") {
        return Sniffed::Playlist(PlaylistKind::Pls);
    }
    if lower.starts_with('<') {
        return Sniffed::Markup;
    }
    if hint.says_pls() && lower.contains("file1=") {
        return Sniffed::Playlist(PlaylistKind::Pls);
    }
    // A plain list of locations (one per line) is an M3U without the header.
    let mut lines = trimmed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let first_is_url = lines.next().is_some_and(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("http://") || l.starts_with("https://") || l.starts_with("icy://")
    });
    if first_is_url || (hint.says_m3u() && !trimmed.is_empty()) {
        return Sniffed::Playlist(PlaylistKind::M3u);
    }
    Sniffed::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint() -> MediaHint {
        MediaHint::default()
    }

    fn media(c: Container) -> Sniffed {
        Sniffed::Media {
            container: c,
            audio_offset: 0,
            mp3_bitrate: None,
        }
    }

    /// An MPEG-1 layer III, 128 kbit/s, 44.1 kHz frame header, no padding (417-byte frames).
    const MP3_HEADER: [u8; 4] = [0xFF, 0xFB, 0x90, 0x00];

    fn mp3_frames(n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.extend_from_slice(&MP3_HEADER);
            v.resize(v.len() + 417 - 4, 0x55);
        }
        v
    }

    fn adts_frames(n: usize) -> Vec<u8> {
        let len = 200usize;
        let mut v = Vec::new();
        for _ in 0..n {
            let h = [
                0xFF,
                0xF1,
                0x50, // AAC LC, 44.1 kHz
                0x80 | ((len >> 11) as u8 & 3),
                (len >> 3) as u8,
                ((len & 7) << 5) as u8 | 0x1F,
                0xFC,
            ];
            v.extend_from_slice(&h);
            v.resize(v.len() + len - 7, 0x21);
        }
        v
    }

    #[test]
    fn magic_numbers() {
        assert_eq!(
            sniff(b"fLaC\0\0\0\x22", &hint(), false),
            media(Container::Flac)
        );
        assert_eq!(
            sniff(b"RIFF\x24\0\0\0WAVEfmt ", &hint(), false),
            media(Container::Wav)
        );
        assert_eq!(
            sniff(b"OggS\0\x02\0\0", &hint(), false),
            media(Container::Ogg)
        );
        assert_eq!(
            sniff(b"\0\0\0\x20ftypM4A \0\0\0\0", &hint(), false),
            media(Container::Mp4)
        );
        assert_eq!(
            sniff(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42], &hint(), false),
            media(Container::Matroska)
        );
    }

    #[test]
    fn mp3_frames_are_mp3_with_bitrate() {
        assert_eq!(
            sniff(&mp3_frames(3), &hint(), false),
            Sniffed::Media {
                container: Container::Mp3,
                audio_offset: 0,
                mp3_bitrate: Some(128_000)
            }
        );
    }

    #[test]
    fn a_lone_sync_word_is_not_mp3() {
        // A valid-looking header whose "next frame" is garbage.
        let mut v = mp3_frames(1);
        v.extend_from_slice(&[0x12; 600]);
        assert_eq!(sniff(&v, &hint(), false), Sniffed::Unknown);
    }

    #[test]
    fn mp3_after_junk_needs_a_hint() {
        let mut v = vec![0x42; 100];
        v.extend_from_slice(&mp3_frames(3));
        assert_eq!(sniff(&v, &hint(), false), Sniffed::Unknown);
        let h = MediaHint::from_content_type(Some("audio/mpeg"));
        assert_eq!(
            sniff(&v, &h, false),
            Sniffed::Media {
                container: Container::Mp3,
                audio_offset: 100,
                mp3_bitrate: Some(128_000)
            }
        );
        // After an ID3 tag, audio is expected: no hint needed.
        assert!(matches!(
            sniff(&v, &hint(), true),
            Sniffed::Media {
                container: Container::Mp3,
                ..
            }
        ));
    }

    #[test]
    fn adts_is_not_mp3() {
        assert_eq!(
            sniff(&adts_frames(3), &hint(), false),
            media(Container::Adts)
        );
    }

    #[test]
    fn layer_two_is_unsupported() {
        // MPEG-1 layer II, 128 kbit/s, 44.1 kHz: 417-byte frames as well.
        let mut v = Vec::new();
        for _ in 0..3 {
            v.extend_from_slice(&[0xFF, 0xFD, 0x80, 0x00]);
            v.resize(v.len() + 417 - 4, 0);
        }
        assert!(matches!(sniff(&v, &hint(), false), Sniffed::Unsupported(_)));
    }

    #[test]
    fn id3_length() {
        let mut tag = b"ID3\x04\x00\x00\x00\x00\x02\x01".to_vec();
        assert_eq!(id3v2_len(&tag), Some(10 + 257));
        tag[5] = 0x10; // footer present
        assert_eq!(id3v2_len(&tag), Some(10 + 257 + 10));
        tag[9] = 0x81; // not synchsafe
        assert_eq!(id3v2_len(&tag), None);
        assert_eq!(id3v2_len(b"ID3"), None);
    }

    #[test]
    fn text_kinds() {
        assert_eq!(
            sniff(
                b"\xEF\xBB\xBF#EXTM3U\n#EXTINF:-1,x\nhttp://a/b.mp3\n",
                &hint(),
                false
            ),
            Sniffed::Playlist(PlaylistKind::M3u)
        );
        assert_eq!(
            sniff(b"\n[Playlist]\nFile1=http://a/\n", &hint(), false),
            Sniffed::Playlist(PlaylistKind::Pls)
        );
        assert_eq!(
            sniff(b"http://a/1.mp3\nhttp://a/2.mp3\n", &hint(), false),
            Sniffed::Playlist(PlaylistKind::M3u)
        );
        assert_eq!(
            sniff(b"  <!DOCTYPE html><html><body>", &hint(), false),
            Sniffed::Markup
        );
        assert_eq!(sniff(b"hello there", &hint(), false), Sniffed::Unknown);
        let m3u = MediaHint::from_content_type(Some("audio/x-mpegurl; charset=utf-8"));
        assert_eq!(
            sniff(b"song.mp3\n", &m3u, false),
            Sniffed::Playlist(PlaylistKind::M3u)
        );
        assert_eq!(sniff(b"", &hint(), false), Sniffed::Unknown);
    }

    #[test]
    fn text_cut_mid_character_is_still_text() {
        let mut v = b"#EXTM3U\n#EXTINF:1,caf".to_vec();
        v.extend_from_slice(&"é".as_bytes()[..1]);
        assert_eq!(
            sniff(&v, &hint(), false),
            Sniffed::Playlist(PlaylistKind::M3u)
        );
    }

    #[test]
    fn probe_names_round_trip() {
        for c in Container::ALL {
            assert_eq!(Container::from_probe_info(c.probe_name()), Some(c));
        }
        assert_eq!(
            Container::from_probe_info("mp3|whatever"),
            Some(Container::Mp3)
        );
        assert_eq!(Container::from_probe_info("m3u|hls-outer"), None);
        assert_eq!(Container::from_probe_info("pls"), None);
    }
}
