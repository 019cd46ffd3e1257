//! The `local` source: a readable regular file confined to the configured directories (after
//! symlinks are resolved). Anything else — missing, outside, a directory, unreadable — is not
//! claimed, so the answer never tells whether a file outside the directories exists.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use symphonia::core::io::MediaSource;

use crate::protocol::load::Exception;
use crate::protocol::track_codec::SourceDetails;

use super::http::{self, HttpSource};
use super::playlist::{self, EntryLocation};
use super::probe::{self, Inspection};
use super::sniff::{MediaHint, PlaylistKind};
use super::{
    LoadedItem, MediaReader, Notify, OpenedMedia, Readiness, ReadinessHandle, SourceSettings,
    TrackData, error, hls,
};

pub const SOURCE_NAME: &str = "local";

const READ_ERROR: &str = "Reading the file failed.";

pub struct LocalSource {
    /// Canonical forms of the configured directories that exist.
    roots: Vec<PathBuf>,
}

impl LocalSource {
    pub fn new(settings: &SourceSettings) -> Self {
        let roots = settings
            .local_directories
            .iter()
            .filter_map(|dir| match std::fs::canonicalize(dir) {
                Ok(root) if root.is_dir() => Some(root),
                _ => {
                    tracing::warn!(
                        "local source directory {} does not exist or is not a directory",
                        dir.display()
                    );
                    None
                }
            })
            .collect();
        LocalSource { roots }
    }

    /// The canonical path of `identifier` if this source may serve it.
    pub async fn resolve(&self, identifier: &str) -> Option<PathBuf> {
        if self.roots.is_empty() || identifier.is_empty() || identifier.contains('\0') {
            return None;
        }
        if http::claims(identifier) {
            return None;
        }
        self.resolve_path(Path::new(identifier)).await
    }

    async fn resolve_path(&self, path: &Path) -> Option<PathBuf> {
        let canonical = tokio::fs::canonicalize(path).await.ok()?;
        if !self.roots.iter().any(|root| canonical.starts_with(root)) {
            return None;
        }
        let meta = tokio::fs::metadata(&canonical).await.ok()?;
        meta.is_file().then_some(canonical)
    }

    /// Loads a resolved path.
    pub async fn load(&self, path: PathBuf, http: Option<&HttpSource>) -> LoadedItem {
        match self.inspect(&path).await {
            None => LoadedItem::Empty,
            Some(Err(e)) => LoadedItem::Error(e),
            Some(Ok(Inspection::Media(outcome))) => LoadedItem::Track(track_data(&path, outcome)),
            Some(Ok(Inspection::Playlist { kind, text })) => {
                self.load_playlist(&path, kind, &text, http).await
            }
        }
    }

    /// Inspects the file; `None` when it cannot be opened.
    async fn inspect(&self, path: &Path) -> Option<Result<Inspection, Exception>> {
        let path = path.to_path_buf();
        let result = tokio::task::spawn_blocking(move || {
            let reader = FileReader::open(&path).ok()?;
            let hint =
                MediaHint::default().with_extension(path.extension().and_then(|e| e.to_str()));
            Some(probe::inspect(Box::new(reader), &hint, READ_ERROR))
        })
        .await;
        match result {
            Ok(found) => found,
            Err(e) => Some(Err(error::internal(&e.to_string()))),
        }
    }

    async fn load_playlist(
        &self,
        path: &Path,
        kind: PlaylistKind,
        text: &str,
        http: Option<&HttpSource>,
    ) -> LoadedItem {
        let parsed = playlist::parse(kind, text);
        if parsed.is_hls {
            return LoadedItem::Error(hls::local_unsupported(&path.display().to_string()));
        }
        let name = parsed
            .name
            .clone()
            .unwrap_or_else(|| playlist::name_from_path(path));
        let entries = parsed.entries.into_iter().filter_map(|entry| {
            playlist::resolve_against_file(path, &entry.location).map(|l| (l, entry.title))
        });
        let results: Vec<_> = futures_util::stream::iter(entries)
            .map(|(location, title)| self.load_entry(location, title, http))
            .buffered(4)
            .collect()
            .await;
        http::collect_playlist(name, results)
    }

    async fn load_entry(
        &self,
        location: EntryLocation,
        title: Option<String>,
        http: Option<&HttpSource>,
    ) -> Result<Option<TrackData>, Exception> {
        match location {
            EntryLocation::Url(url) => match http {
                Some(http) => http.load_entry(url, title).await,
                None => Ok(None),
            },
            EntryLocation::Path(path) => {
                let Some(path) = self.resolve_path(&path).await else {
                    return Ok(None);
                };
                match self.inspect(&path).await {
                    Some(Ok(Inspection::Media(outcome))) => {
                        let mut track = track_data(&path, outcome);
                        if let Some(title) = title
                            && track.info.title == http::UNKNOWN_TITLE
                        {
                            track.info.title = title;
                        }
                        Ok(Some(track))
                    }
                    Some(Ok(Inspection::Playlist { .. })) | None => Ok(None),
                    Some(Err(e)) => Err(e),
                }
            }
        }
    }

    /// Opens a local track for playback; the path is checked against the directories again
    /// (a client can send any blob).
    pub async fn open(&self, track: &TrackData) -> Result<OpenedMedia, Exception> {
        let container = http::playback_container(&track.details)?;
        let location = track.info.uri.as_deref().unwrap_or(&track.info.identifier);
        let not_found = || {
            error::unsupported_media(
                "The file is not available.",
                "no readable file at that path in the local source's directories",
            )
        };
        let path = self.resolve(location).await.ok_or_else(not_found)?;
        let reader = tokio::task::spawn_blocking(move || FileReader::open(&path))
            .await
            .map_err(|e| error::internal(&e.to_string()))?
            .map_err(|_| not_found())?;
        Ok(OpenedMedia {
            reader: Box::new(reader),
            container,
            extension: Some(container.extension().to_string()),
            mime: None,
            seekable: true,
        })
    }
}

fn track_data(path: &Path, outcome: probe::ProbeOutcome) -> TrackData {
    let location = path.display().to_string();
    TrackData {
        info: http::track_info(SOURCE_NAME, location, &outcome, None),
        details: SourceDetails::ProbeInfo(outcome.container.probe_name().to_string()),
    }
}

/// A buffered file. Reads never wait on anything but the disk, so it is always ready.
pub struct FileReader {
    file: BufReader<std::fs::File>,
    len: u64,
    pos: Arc<AtomicU64>,
}

impl FileReader {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a file"));
        }
        Ok(FileReader {
            file: BufReader::with_capacity(64 * 1024, file),
            len: meta.len(),
            pos: Arc::new(AtomicU64::new(0)),
        })
    }
}

fn file_readiness(len: u64, pos: &AtomicU64) -> Readiness {
    let remaining = len.saturating_sub(pos.load(Ordering::Relaxed));
    Readiness {
        buffered: usize::try_from(remaining).unwrap_or(usize::MAX),
        finished: true,
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.pos.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Seek for FileReader {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        let at = self.file.seek(from)?;
        self.pos.store(at, Ordering::Relaxed);
        Ok(at)
    }
}

impl MediaSource for FileReader {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

impl MediaReader for FileReader {
    fn readiness(&self) -> Readiness {
        file_readiness(self.len, &self.pos)
    }

    fn set_notify(&mut self, _notify: Notify) {
        // Always ready: there is never anything to wait for.
    }

    fn readiness_handle(&self) -> ReadinessHandle {
        let (len, pos) = (self.len, self.pos.clone());
        ReadinessHandle::new(move || file_readiness(len, &pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(dirs: Vec<PathBuf>) -> SourceSettings {
        SourceSettings {
            http: false,
            local: true,
            local_directories: dirs,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            proxy: None,
            read_ahead_bytes: 1 << 20,
            route_planner: None,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("acoustic-local-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn confinement() {
        let base = temp_dir("confine");
        let inside = base.join("music");
        let outside = base.join("secret");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(inside.join("a.wav"), b"RIFF").unwrap();
        std::fs::write(outside.join("b.wav"), b"RIFF").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.join("b.wav"), inside.join("link.wav")).unwrap();

        let source = LocalSource::new(&settings(vec![inside.clone()]));
        let s = |p: PathBuf| p.display().to_string();
        assert_eq!(
            source.resolve(&s(inside.join("a.wav"))).await,
            Some(std::fs::canonicalize(inside.join("a.wav")).unwrap())
        );
        // Outside, through `..`, through a symlink, a directory, missing: all unclaimed.
        assert_eq!(source.resolve(&s(outside.join("b.wav"))).await, None);
        assert_eq!(
            source.resolve(&s(inside.join("../secret/b.wav"))).await,
            None
        );
        #[cfg(unix)]
        assert_eq!(source.resolve(&s(inside.join("link.wav"))).await, None);
        assert_eq!(source.resolve(&s(inside.clone())).await, None);
        assert_eq!(source.resolve(&s(inside.join("nope.wav"))).await, None);
        assert_eq!(source.resolve("http://x/a.wav").await, None);

        // No directories configured: nothing is served.
        let none = LocalSource::new(&settings(vec![]));
        assert_eq!(none.resolve(&s(inside.join("a.wav"))).await, None);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn file_reader_readiness_follows_position() {
        let dir = temp_dir("reader");
        let path = dir.join("f.bin");
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        let mut r = FileReader::open(&path).unwrap();
        let handle = r.readiness_handle();
        assert_eq!(r.readiness().buffered, 1000);
        let mut buf = [0u8; 300];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(handle.get().buffered, 700);
        r.seek(SeekFrom::End(-10)).unwrap();
        assert_eq!(
            r.readiness(),
            Readiness {
                buffered: 10,
                finished: true
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
