//! ICY (SHOUTcast/Icecast) in-band metadata: after every `icy-metaint` bytes of audio the server
//! sends one length byte `n` and `16 · n` bytes of metadata (`StreamTitle='…';StreamUrl='…';`,
//! NUL padded). [`IcyStripper`] cuts those blocks out of the byte stream, whatever the chunk
//! boundaries, and reports the stream title when it changes.

use reqwest::header::HeaderMap;

/// The largest metadata interval believed (a bigger one is a broken header).
const MAX_METAINT: usize = 1 << 20;

/// Whether the response headers are an ICY server's (`icy-metaint`, `icy-name`, `icy-br` …).
pub fn is_icy(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name.as_str().starts_with("icy-") && name.as_str() != "icy-metadata")
}

/// The metadata interval the server announced, if it sends in-band metadata.
pub fn metaint(headers: &HeaderMap) -> Option<usize> {
    headers
        .get("icy-metaint")?
        .to_str()
        .ok()?
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_METAINT).contains(n))
}

/// Cuts metadata blocks out of one connection's body.
#[derive(Debug)]
pub struct IcyStripper {
    metaint: usize,
    /// Audio bytes until the next length byte.
    audio_left: usize,
    /// Metadata bytes still to come in the current block (after its length byte).
    meta_left: usize,
    meta: Vec<u8>,
    last_title: Option<String>,
}

impl IcyStripper {
    pub fn new(metaint: usize) -> Self {
        IcyStripper {
            metaint,
            audio_left: metaint,
            meta_left: 0,
            meta: Vec::new(),
            last_title: None,
        }
    }

    /// The audio bytes of `chunk`, and the stream title if a block in it changed it.
    pub fn strip(&mut self, mut chunk: &[u8]) -> (Vec<u8>, Option<String>) {
        let mut audio = Vec::with_capacity(chunk.len());
        let mut title = None;
        while !chunk.is_empty() {
            if self.audio_left > 0 {
                let n = self.audio_left.min(chunk.len());
                audio.extend_from_slice(&chunk[..n]);
                self.audio_left -= n;
                chunk = &chunk[n..];
            } else if self.meta_left == 0 && self.meta.is_empty() {
                // The length byte.
                self.meta_left = usize::from(chunk[0]) * 16;
                chunk = &chunk[1..];
                if self.meta_left == 0 {
                    self.audio_left = self.metaint;
                }
            } else {
                let n = self.meta_left.min(chunk.len());
                self.meta.extend_from_slice(&chunk[..n]);
                self.meta_left -= n;
                chunk = &chunk[n..];
                if self.meta_left == 0 {
                    if let Some(t) = stream_title(&self.meta)
                        && self.last_title.as_deref() != Some(t.as_str())
                    {
                        self.last_title = Some(t.clone());
                        title = Some(t);
                    }
                    self.meta.clear();
                    self.audio_left = self.metaint;
                }
            }
        }
        (audio, title)
    }
}

/// `StreamTitle='…';` of a metadata block (the value ends at the last `';` before the next
/// key, so an apostrophe inside the title survives).
pub fn stream_title(block: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(block);
    let text = text.trim_end_matches('\0');
    let start = text.find("StreamTitle='")? + "StreamTitle='".len();
    let rest = &text[start..];
    let end = match rest.find("';StreamUrl=") {
        Some(i) => i,
        None => rest.rfind("';").unwrap_or(rest.len()),
    };
    let title = rest[..end].trim();
    (!title.is_empty()).then(|| title.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICY body: `audio` with a metadata block (`meta`, or an empty one) every `metaint`.
    fn body(audio: &[u8], metaint: usize, meta: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, piece) in audio.chunks(metaint).enumerate() {
            out.extend_from_slice(piece);
            if piece.len() < metaint {
                break;
            }
            match meta.get(i).filter(|m| !m.is_empty()) {
                Some(m) => {
                    let mut block = m.as_bytes().to_vec();
                    block.resize(block.len().div_ceil(16) * 16, 0);
                    out.push((block.len() / 16) as u8);
                    out.extend_from_slice(&block);
                }
                None => out.push(0),
            }
        }
        out
    }

    #[test]
    fn blocks_are_cut_out_whatever_the_chunking() {
        let audio: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let wire = body(
            &audio,
            700,
            &[
                "StreamTitle='First';StreamUrl='';",
                "",
                "StreamTitle='It''s Second';",
                "StreamTitle='It''s Second';",
            ],
        );
        for chunk in [1, 2, 7, 16, 17, 700, 701, 4096] {
            let mut s = IcyStripper::new(700);
            let mut out = Vec::new();
            let mut titles = Vec::new();
            for c in wire.chunks(chunk) {
                let (a, t) = s.strip(c);
                out.extend(a);
                titles.extend(t);
            }
            assert_eq!(out, audio, "chunk size {chunk}");
            // A chunk holding two blocks reports the later title only.
            let want: &[&str] = if chunk < 1400 {
                &["First", "It''s Second"]
            } else {
                &["It''s Second"]
            };
            assert_eq!(titles, want, "chunk size {chunk}");
        }
    }

    #[test]
    fn titles() {
        assert_eq!(
            stream_title(b"StreamTitle='Artist - Song';StreamUrl='http://x';\0\0").as_deref(),
            Some("Artist - Song")
        );
        assert_eq!(
            stream_title(b"StreamTitle='Don't Stop';\0").as_deref(),
            Some("Don't Stop")
        );
        assert_eq!(stream_title(b"StreamTitle='';"), None);
        assert_eq!(stream_title(b"StreamUrl='x';"), None);
    }

    #[test]
    fn headers() {
        let mut h = HeaderMap::new();
        assert!(!is_icy(&h));
        h.insert("icy-metaint", "16000".parse().unwrap());
        assert!(is_icy(&h));
        assert_eq!(metaint(&h), Some(16000));
        h.insert("icy-metaint", "0".parse().unwrap());
        assert_eq!(metaint(&h), None);
    }
}
