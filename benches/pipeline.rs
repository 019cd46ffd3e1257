//! Cost of one track's pipeline per 20 ms stereo frame, against the libopus floor:
//!
//! - `encode_floor`: libopus alone encoding the same audio (48 kHz staircase, complexity 10,
//!   application "audio", the pipeline's encoder settings, float samples as the pipeline
//!   hands them at volume 100): the cost every transcoded stream pays at least;
//! - `encode_floor_mp3_pcm`: the same encoder on the MP3 below decoded to 48 kHz (by ffmpeg),
//!   i.e. on the signal the transcode path actually hands libopus. libopus works harder on
//!   it than on the clean staircase (MP3 coding noise fills bands the clean tones leave
//!   empty), so this floor is the fairer base for the transcode path's overhead; both are
//!   reported;
//! - `encode_floor_filtered_pcm`: the same encoder on that PCM after the all-filters chain
//!   below (the signal the all-filters path hands libopus): distortion, vibrato and the
//!   timescale fill the spectrum further, and libopus's own cost follows the signal;
//! - `transcode_mp3_44k`: the whole path for an MP3 at 44.1 kHz: demux, decode, resample to
//!   48 kHz, volume, Opus encode;
//! - `transcode_mp3_44k_all_filters`: the same with all ten filters on;
//! - `passthrough_opus`: an Ogg Opus source sent as its own packets.
//!
//! `cargo bench --bench pipeline`. After criterion's report (absolute times and their spread)
//! it measures the paths once more taking turns in short slices, so that a machine whose
//! speed drifts slows them all alike, and prints the ratios from that run against the targets
//! (transcode ≤ 1.25 × floor, all filters ≤ 1.6 × floor, passthrough ≤ 0.05 × transcode).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acoustic::audio::filters::FilterChain;
use acoustic::audio::pipeline::{Controls, PipelineSettings, TrackPipeline};
use acoustic::config::ResamplingQuality;
use acoustic::protocol::filters::Filters;
use acoustic::sources::{MediaReader, OpenedMedia, Readiness, ReadinessHandle};
use acoustic::voice::MAX_OPUS_PACKET;
use arc_swap::ArcSwap;
use criterion::Criterion;

/// Lavalink's defaults: `opusEncodingQuality` 10, `resamplingQuality` LOW.
const SETTINGS: PipelineSettings = PipelineSettings {
    opus_complexity: 10,
    resampling: ResamplingQuality::Low,
};

/// The same set as the filters bench: every filter active.
const ALL_TEN: &str = r#"{
    "volume": 0.8,
    "equalizer": [{"band": 0, "gain": 0.2}, {"band": 3, "gain": 0.1}, {"band": 8, "gain": -0.1},
                  {"band": 11, "gain": 0.15}, {"band": 14, "gain": 0.3}],
    "karaoke": {"level": 0.7},
    "timescale": {"speed": 1.1, "pitch": 1.05, "rate": 1.02},
    "tremolo": {"frequency": 3, "depth": 0.3},
    "vibrato": {"frequency": 4, "depth": 0.3},
    "rotation": {"rotationHz": 0.2},
    "distortion": {"scale": 0.9},
    "channelMix": {"leftToRight": 0.2, "rightToLeft": 0.2},
    "lowPass": {"smoothing": 2}
}"#;

/// Media held in memory, so the bench measures audio work, not the disk.
struct MemoryReader(Cursor<Arc<[u8]>>);

impl Read for MemoryReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for MemoryReader {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.0.seek(pos)
    }
}

impl symphonia::core::io::MediaSource for MemoryReader {
    fn is_seekable(&self) -> bool {
        true
    }
    fn byte_len(&self) -> Option<u64> {
        Some(self.0.get_ref().len() as u64)
    }
}

impl MediaReader for MemoryReader {
    fn readiness(&self) -> Readiness {
        Readiness {
            buffered: self.0.get_ref().len(),
            finished: true,
        }
    }
    fn readiness_handle(&self) -> ReadinessHandle {
        let len = self.0.get_ref().len();
        ReadinessHandle::new(move || Readiness {
            buffered: len,
            finished: true,
        })
    }
    fn set_notify(&mut self, _notify: Arc<dyn Fn() + Send + Sync>) {}
}

fn open(bytes: &Arc<[u8]>, extension: &str) -> TrackPipeline {
    let media = OpenedMedia {
        reader: Box::new(MemoryReader(Cursor::new(bytes.clone()))),
        container: acoustic::sources::sniff::Container::ALL
            .into_iter()
            .find(|c| c.extension() == extension)
            .unwrap_or(acoustic::sources::sniff::Container::Mp3),
        extension: Some(extension.into()),
        mime: None,
        seekable: true,
    };
    TrackPipeline::open(media, &SETTINGS, 0, Arc::new(|| {})).expect("bench media opens")
}

/// The measured paths, each keeping its state between calls.
struct Paths<'a> {
    /// libopus alone on the clean staircase, the decoded MP3, and that filtered.
    floor: Floor<'a>,
    mp3_floor: Floor<'a>,
    filtered_floor: Floor<'a>,
    mp3: Arc<[u8]>,
    opus: Arc<[u8]>,
    no_filters: ArcSwap<Filters>,
    all_filters: ArcSwap<Filters>,
    /// Open tracks of the transcode, all-filters and passthrough paths.
    tracks: [Option<TrackPipeline>; 3],
}

/// Path names.
const FLOOR: &str = "encode_floor";
const MP3_FLOOR: &str = "encode_floor_mp3_pcm";
const FILTERED_FLOOR: &str = "encode_floor_filtered_pcm";
const TRANSCODE: &str = "transcode_mp3_44k";
const ALL_FILTERS: &str = "transcode_mp3_44k_all_filters";
const PASSTHROUGH: &str = "passthrough_opus";
/// Every path, in report order.
const NAMES: [&str; 6] = [
    FLOOR,
    MP3_FLOOR,
    FILTERED_FLOOR,
    TRANSCODE,
    ALL_FILTERS,
    PASSTHROUGH,
];

impl Paths<'_> {
    /// Runs `frames` frames of path `name`; returns the time they took.
    fn run(&mut self, name: &str, frames: u64) -> Duration {
        match name {
            FLOOR => self.floor.run(frames),
            MP3_FLOOR => self.mp3_floor.run(frames),
            FILTERED_FLOOR => self.filtered_floor.run(frames),
            TRANSCODE => run_track(
                &self.mp3,
                "mp3",
                &self.no_filters,
                &mut self.tracks[0],
                frames,
            ),
            ALL_FILTERS => run_track(
                &self.mp3,
                "mp3",
                &self.all_filters,
                &mut self.tracks[1],
                frames,
            ),
            PASSTHROUGH => run_track(
                &self.opus,
                "opus",
                &self.no_filters,
                &mut self.tracks[2],
                frames,
            ),
            _ => unreachable!("unknown path {name}"),
        }
    }
}

/// libopus alone with the pipeline's encoder settings, encoding 20 ms frames of some PCM in
/// turn (from the start again after the last).
struct Floor<'a> {
    encoder: opus::Encoder,
    frames: Vec<&'a [f32]>,
    next: usize,
}

impl<'a> Floor<'a> {
    fn new(pcm: &'a [f32]) -> Self {
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
        encoder
            .set_complexity(i32::from(SETTINGS.opus_complexity))
            .unwrap();
        Floor {
            encoder,
            frames: pcm.chunks_exact(1920).collect(),
            next: 0,
        }
    }

    /// Times encoding the next `frames` frames.
    fn run(&mut self, frames: u64) -> Duration {
        let mut out = [0u8; MAX_OPUS_PACKET];
        let start = Instant::now();
        for _ in 0..frames {
            let n = self
                .encoder
                .encode_float(self.frames[self.next], &mut out)
                .unwrap();
            black_box(&out[..n]);
            self.next = (self.next + 1) % self.frames.len();
        }
        start.elapsed()
    }
}

/// The MP3 decoded and resampled to 48 kHz stereo by ffmpeg (which the test media need
/// anyway), as f32.
fn decoded_with_ffmpeg(path: &std::path::Path) -> Vec<f32> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(path)
        .args(["-ar", "48000", "-ac", "2", "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg failed to decode {path:?}");
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).clamp(-1.0, 1.0))
        .collect()
}

/// `pcm` (48 kHz stereo) through the all-filters chain, clipped as the pipeline clips what it
/// hands the encoder.
fn filtered(pcm: &[f32]) -> Vec<f32> {
    let filters: Filters = serde_json::from_str(ALL_TEN).unwrap();
    let mut chain = FilterChain::new(&filters);
    let mut out = Vec::with_capacity(pcm.len());
    for frame in pcm.chunks_exact(1920) {
        chain.process(frame, &mut out);
    }
    for s in &mut out {
        *s = s.clamp(-1.0, 1.0);
    }
    out
}

/// Times `frames` frames of a track from `bytes`, re-opening it (untimed) when it ends.
fn run_track(
    bytes: &Arc<[u8]>,
    extension: &str,
    filters: &ArcSwap<Filters>,
    track: &mut Option<TrackPipeline>,
    frames: u64,
) -> Duration {
    let controls = Controls {
        volume: 100,
        filters_version: 1,
        filters,
        end_time_ms: i64::MAX,
    };
    let mut out = [0u8; MAX_OPUS_PACKET];
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < frames {
        let pipeline = track.get_or_insert_with(|| open(bytes, extension));
        let start = Instant::now();
        let mut ended = false;
        while done < frames {
            match pipeline
                .next_frame(&controls, &mut out)
                .expect("bench media decodes")
            {
                Some(frame) => {
                    black_box(&out[..frame.len]);
                    done += 1;
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        total += start.elapsed();
        if ended {
            *track = None;
        }
    }
    total
}

fn benches(c: &mut Criterion, paths: &mut Paths) {
    let mut group = c.benchmark_group("pipeline_per_20ms_frame");
    for name in NAMES {
        group.bench_function(name, |b| b.iter_custom(|iters| paths.run(name, iters)));
    }
    group.finish();
}

/// Rounds of the paired measurement, and frames of each path per round.
const PAIRED_ROUNDS: usize = 60;
const PAIRED_FRAMES: u64 = 50;

/// The ratios, from one measurement in which the paths take turns in short slices (50 frames
/// each, 60 rounds): on a shared machine whose speed drifts, each path sees the same machine,
/// so the ratios hold even when the absolute times do not. Criterion's separate runs above give
/// the absolute times and their spread.
fn report(paths: &mut Paths) {
    let mut totals = [Duration::ZERO; NAMES.len()];
    for _ in 0..PAIRED_ROUNDS {
        for (name, total) in NAMES.iter().zip(totals.iter_mut()) {
            *total += paths.run(name, PAIRED_FRAMES);
        }
    }
    let frames = (PAIRED_ROUNDS as u64 * PAIRED_FRAMES) as f64;
    let [
        floor,
        mp3_floor,
        filtered_floor,
        transcode,
        filters,
        passthrough,
    ] = totals.map(|t| t.as_secs_f64() / frames);
    println!();
    println!(
        "per 20 ms stereo frame (paths interleaved, {PAIRED_ROUNDS} rounds of {PAIRED_FRAMES} frames each):"
    );
    for (name, t) in [
        ("libopus encode alone (floor)", floor),
        ("  ... of the decoded MP3's PCM", mp3_floor),
        ("  ... of that PCM, all filtered", filtered_floor),
        ("transcode MP3 44.1 kHz -> Opus", transcode),
        ("  ... with all ten filters", filters),
        ("Opus passthrough", passthrough),
    ] {
        println!(
            "  {name:32} {:9.2} us  ({:.3} % of a core)",
            t * 1e6,
            t / 0.02 * 100.0
        );
    }
    println!("ratios (against the clean floor; against the MP3-PCM floor):");
    println!(
        "  transcode / floor       {:6.3}; {:6.3}  (target <= 1.25)",
        transcode / floor,
        transcode / mp3_floor
    );
    println!(
        "  all filters / floor     {:6.3}; {:6.3}  (target <= 1.6)",
        filters / floor,
        filters / mp3_floor
    );
    println!(
        "  all filters / floor of the filtered PCM {:6.3}",
        filters / filtered_floor
    );
    println!(
        "  passthrough / transcode {:6.4}  (target <= 0.05)",
        passthrough / transcode
    );
}

fn main() {
    let mp3: Arc<[u8]> = std::fs::read(common::media("staircase/staircase.mp3"))
        .unwrap()
        .into();
    let opus: Arc<[u8]> = std::fs::read(common::media("staircase/staircase.opus"))
        .unwrap()
        .into();
    let wav = common::audio::read_wav(&common::media("staircase/staircase-48k.wav")).unwrap();
    assert_eq!((wav.rate, wav.channels), (48_000, 2));
    let pcm: Vec<f32> = wav.samples.iter().map(|&s| s.clamp(-1.0, 1.0)).collect();
    let mp3_pcm = decoded_with_ffmpeg(&common::media("staircase/staircase.mp3"));
    let filtered_pcm = filtered(&mp3_pcm);
    let mut paths = Paths {
        floor: Floor::new(&pcm),
        mp3_floor: Floor::new(&mp3_pcm),
        filtered_floor: Floor::new(&filtered_pcm),
        mp3,
        opus,
        no_filters: ArcSwap::from_pointee(Filters::default()),
        all_filters: ArcSwap::from_pointee(serde_json::from_str::<Filters>(ALL_TEN).unwrap()),
        tracks: [None, None, None],
    };

    let mut criterion = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(6))
        .configure_from_args();
    benches(&mut criterion, &mut paths);
    criterion.final_summary();
    report(&mut paths);
}
