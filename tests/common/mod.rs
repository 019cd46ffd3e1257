//! Shared support for the integration tests: audio analysis, the fault-injecting media server,
//! and the generated test media (see `tests/media/README.md`).
#![allow(dead_code)]

pub mod audio;
pub mod media_server;
pub mod node;
pub mod rig;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The generated test media directory, generating it first if it is missing or out of date
/// (`tests/media/generate.sh`; quick when up to date, safe to call from parallel tests).
pub fn media_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let media = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("media");
        let out = media.join("generated");
        let status = std::process::Command::new("bash")
            .arg(media.join("generate.sh"))
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run tests/media/generate.sh: {e}"));
        assert!(
            status.success(),
            "tests/media/generate.sh failed ({status}); its output above says why"
        );
        out
    })
}

/// A file of the generated media, e.g. `media("staircase/staircase.mp3")`.
pub fn media(relative: &str) -> PathBuf {
    let path = media_dir().join(relative);
    assert!(path.is_file(), "no generated media file {relative}");
    path
}

/// One encoding of the 10 s staircase, under `staircase/`.
#[derive(Clone, Copy, Debug)]
pub struct Staircase {
    pub file: &'static str,
    /// The codec as ffprobe names it.
    pub codec: &'static str,
    pub rate: u32,
    pub channels: usize,
    /// Carries title "Acoustic Staircase" and artist "Acoustic Test Media".
    pub tagged: bool,
}

const fn stair(
    file: &'static str,
    codec: &'static str,
    rate: u32,
    channels: usize,
    tagged: bool,
) -> Staircase {
    Staircase {
        file,
        codec,
        rate,
        channels,
        tagged,
    }
}

/// Every staircase file `generate.sh` writes.
pub const STAIRCASES: &[Staircase] = &[
    stair("staircase.mp3", "mp3", 44100, 2, true),
    stair("staircase-untagged.mp3", "mp3", 44100, 2, false),
    stair("staircase-22k-mono.mp3", "mp3", 22050, 1, true),
    stair("staircase-faststart.m4a", "aac", 44100, 2, true),
    stair("staircase-moovlast.m4a", "aac", 44100, 2, true),
    stair("staircase-alac.m4a", "alac", 44100, 2, true),
    stair("staircase.aac", "aac", 44100, 2, false),
    stair("staircase.flac", "flac", 44100, 2, true),
    stair("staircase-96k.flac", "flac", 96000, 2, false),
    stair("staircase-5.1.flac", "flac", 48000, 6, false),
    stair("staircase-44k.wav", "pcm_s16le", 44100, 2, false),
    stair("staircase-48k.wav", "pcm_s16le", 48000, 2, false),
    stair("staircase-mono.wav", "pcm_s16le", 44100, 1, false),
    stair("staircase.ogg", "vorbis", 44100, 2, true),
    stair("staircase.opus", "opus", 48000, 2, true),
    stair("staircase.webm", "opus", 48000, 2, true),
    stair("staircase.mka", "opus", 48000, 2, true),
];

/// The staircase files that also exist as `faults/truncated/<file>` (first half only) and
/// `faults/corrupt/<file>` (4 KiB of noise written over the middle).
pub const FAULT_SOURCES: &[&str] = &[
    "staircase.mp3",
    "staircase-faststart.m4a",
    "staircase-moovlast.m4a",
    "staircase-alac.m4a",
    "staircase.aac",
    "staircase.flac",
    "staircase-44k.wav",
    "staircase.ogg",
    "staircase.opus",
    "staircase.webm",
    "staircase.mka",
];
