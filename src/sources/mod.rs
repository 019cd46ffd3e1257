//! Sources: identifier → track(s), and opening tracks for playback.
//! (Interface stub; the implementation is being written on the `sources` branch.)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::load::Exception;
use crate::protocol::track::TrackInfo;
use crate::protocol::track_codec::{DetailsLayout, SourceDetails};

#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub http: bool,
    pub local: bool,
    pub local_directories: Vec<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub proxy: Option<ProxySettings>,
    pub read_ahead_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrackData {
    pub info: TrackInfo,
    pub details: SourceDetails,
}

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

pub struct Readiness {
    pub buffered: usize,
    pub finished: bool,
}

/// Reports a reader's readiness from any thread (the reader itself is owned by the demuxer).
pub type ReadinessHandle = Arc<dyn Fn() -> Readiness + Send + Sync>;

pub trait MediaReader: symphonia::core::io::MediaSource {
    fn readiness(&self) -> Readiness;
    /// A handle that keeps reporting this reader's readiness after the reader was moved.
    fn readiness_handle(&self) -> ReadinessHandle;
    fn set_notify(&mut self, notify: Arc<dyn Fn() + Send + Sync>);
}

pub struct OpenedMedia {
    pub reader: Box<dyn MediaReader>,
    pub extension: Option<String>,
    pub mime: Option<String>,
    pub seekable: bool,
}

pub struct SourceManagers {
    settings: SourceSettings,
}

impl SourceManagers {
    pub fn new(settings: SourceSettings) -> Self {
        SourceManagers { settings }
    }
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.settings.local {
            v.push("local");
        }
        if self.settings.http {
            v.push("http");
        }
        v
    }
    pub fn details_layout(&self, source_name: &str) -> Option<DetailsLayout> {
        match source_name {
            "http" | "local" => Some(DetailsLayout::ProbeInfo),
            _ => None,
        }
    }
    pub async fn load(&self, _identifier: &str) -> LoadedItem {
        LoadedItem::Empty
    }
    pub async fn open(&self, _track: &TrackData) -> Result<OpenedMedia, Exception> {
        Err(Exception::new(
            "not implemented",
            crate::protocol::load::Severity::Fault,
            "Unsupported",
            "",
        ))
    }
}
