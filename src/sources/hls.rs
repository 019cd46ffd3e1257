//! HLS (`#EXT-X-` M3U playlists). Not supported yet: a playlist recognised as HLS ends here with
//! a clear error. This is the one place to extend (master playlist → variant choice, media
//! playlist → segment reader, probe info `m3u|hls-outer` / `m3u|hls-inner`).

use crate::protocol::load::Exception;

use super::error;

/// Loads the HLS playlist at `url` whose text is `text`.
pub fn load(url: &str, _text: &str) -> Result<super::LoadedItem, Exception> {
    Err(error::unsupported_media(
        "HLS streams are not supported yet.",
        &format!("{url} is an HLS playlist"),
    ))
}
