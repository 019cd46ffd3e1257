//! The yt-dlp resolver as the rest of the node holds it: searched for in the background.
//!
//! Finding yt-dlp starts a Python interpreter and imports yt-dlp, which takes a second or two.
//! The node must answer `/version`, the WebSocket and every other request at once after start-up,
//! so the search runs beside them; only what needs yt-dlp (a load a yt-dlp source might claim,
//! playing one of their tracks, the source list of `/v4/info`) waits for it to end.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::{YtDlpResolver, YtDlpSettings};
use crate::protocol::track_codec::DetailsLayout;

/// The resolver once the search has ended: `Some` when yt-dlp was found.
pub struct YtDlpSlot {
    /// `None`: no yt-dlp source is enabled, nothing is searched for.
    settings: Option<YtDlpSettings>,
    found: OnceCell<Option<Arc<YtDlpResolver>>>,
}

impl YtDlpSlot {
    /// A slot that searches with `settings` (on the first [`get`](Self::get), or when
    /// [`search_in_background`](Self::search_in_background) starts it), unless every source it
    /// would serve is disabled.
    pub fn new(settings: YtDlpSettings) -> Self {
        YtDlpSlot {
            settings: settings.sources.any().then_some(settings),
            found: OnceCell::new(),
        }
    }

    /// Starts the search now on the current runtime, so that it has usually ended before the
    /// first request needs it.
    pub fn search_in_background(self: &Arc<Self>) {
        if self.settings.is_some() {
            let slot = self.clone();
            tokio::spawn(async move {
                slot.get().await;
            });
        }
    }

    /// The resolver, waiting for the search if it is still running.
    pub async fn get(&self) -> Option<&Arc<YtDlpResolver>> {
        let settings = self.settings.as_ref()?;
        self.found
            .get_or_init(|| YtDlpResolver::detect(settings.clone()))
            .await
            .as_ref()
    }

    /// How an encoded track of `source_name` lays out its detail bytes, without waiting: while
    /// the search runs, the enabled sources are assumed to be available.
    pub fn details_layout(&self, source_name: &str) -> Option<DetailsLayout> {
        match self.found.get() {
            Some(found) => found.as_ref()?.details_layout(source_name),
            None => self
                .settings
                .as_ref()?
                .sources
                .plays(source_name)
                .then_some(DetailsLayout::Empty),
        }
    }
}

/// A search that has already ended (tests, and nodes that found yt-dlp some other way).
impl From<Option<Arc<YtDlpResolver>>> for YtDlpSlot {
    fn from(found: Option<Arc<YtDlpResolver>>) -> Self {
        YtDlpSlot {
            settings: found.as_ref().map(|r| r.settings.clone()),
            found: OnceCell::new_with(Some(found)),
        }
    }
}
