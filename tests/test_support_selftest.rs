//! Checks the test support itself: the generated media are what `tests/media/README.md` says,
//! the analysis helpers in `common::audio` measure correctly, and the fault-injecting media
//! server in `common::media_server` behaves as scripted.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::audio::{self, Audio};
use common::media_server::{MediaServer, Script, Times};
use common::{FAULT_SOURCES, STAIRCASES, media, media_dir};

// ================================================================================================
// Analysis helpers on synthetic signals

#[test]
fn dominant_frequency_is_accurate_on_half_second_windows() {
    for rate in [44100, 48000] {
        for hz in [203.7, 440.0, 987.25, 1234.5, 5000.1] {
            let a = audio::sine(hz, 0.3, rate, 1, 0.5);
            let got = audio::dominant_frequency(&a.samples, rate).expect("a tone has a pitch");
            assert!((got - hz).abs() < 0.2, "{hz} Hz at {rate} Hz read as {got}");
        }
    }
    assert_eq!(audio::dominant_frequency(&[0.0; 24000], 48000), None);
}

#[test]
fn staircase_steps_and_position_are_recovered_in_memory() {
    let a = audio::staircase(48000, 1, 10.0);
    assert_eq!(
        audio::staircase_steps(&a.samples, 48000),
        (0..10).map(Some).collect::<Vec<_>>()
    );
    for start in [0.0, 0.52, 3.37, 7.999] {
        let cut = a.seconds(start, start + 1.6);
        let pos = audio::staircase_position(&cut.samples, 48000).expect("a boundary is inside");
        assert!(
            (pos - start).abs() < 0.002,
            "cut at {start} located at {pos}"
        );
    }
    // Less than a boundary: no position.
    assert_eq!(
        audio::staircase_position(&a.seconds(2.1, 2.9).samples, 48000),
        None
    );
    assert_eq!(audio::staircase_step(409.0), Some(2));
    assert_eq!(audio::staircase_step(440.0), None);
    assert_eq!(audio::staircase_step(150.0), None);
}

#[test]
fn pitch_changes_follow_a_sped_up_staircase() {
    // The staircase at 1.25× tempo, same pitch: steps of 0.8 s.
    let rate = 48000;
    let mut samples = Vec::new();
    for k in 0..5 {
        samples.extend(audio::sine(audio::staircase_hz(k), 0.5, rate, 1, 0.8).samples);
    }
    let changes = audio::pitch_changes(&samples, rate);
    assert_eq!(changes.len(), 4, "{changes:?}");
    for (i, c) in changes.iter().enumerate() {
        assert!((c.time_s - 0.8 * (i + 1) as f64).abs() < 0.002, "{c:?}");
        assert!((c.from_hz - audio::staircase_hz(i)).abs() < 1.0, "{c:?}");
        assert!((c.to_hz - audio::staircase_hz(i + 1)).abs() < 1.0, "{c:?}");
    }
}

#[test]
fn levels_correlation_delay_and_onset() {
    let a = audio::sine(1000.0, 0.5, 48000, 2, 1.0);
    assert!((audio::rms_dbfs(&a.samples) + 9.03).abs() < 0.01);
    assert!((audio::peak_dbfs(&a.samples) + 6.02).abs() < 0.01);
    assert!((audio::tone_amplitude(&a.channel(0), 48000, 1000.0) - 0.5).abs() < 0.005);
    assert!(audio::tone_amplitude(&a.channel(0), 48000, 2000.0) < 0.001);
    assert!((audio::band_dbfs(&a.channel(0), 48000, 900.0, 1100.0) + 9.03).abs() < 0.05);
    assert!(audio::band_dbfs(&a.channel(0), 48000, 2000.0, 24000.0) < -80.0);
    assert!((audio::channel_correlation(&a, 0, 1) - 1.0).abs() < 1e-9);
    let inverted: Vec<f32> = a.channel(0).iter().map(|x| -x).collect();
    assert!((audio::correlation(&a.channel(0), &inverted) + 1.0).abs() < 1e-9);
    assert_eq!(audio::rms_dbfs(&[0.0; 100]), f64::NEG_INFINITY);

    let reference = audio::staircase(48000, 1, 1.0).samples;
    let mut delayed = vec![0.0f32; 480];
    delayed.extend(&reference);
    let (lag, c) = audio::delay(&reference, &delayed, 2000).expect("found");
    assert_eq!(lag, 480);
    assert!(c > 0.999, "correlation {c}");
    // Sample 480 is sin(0) = 0; the next one is the first above −60 dBFS.
    assert_eq!(audio::onset(&delayed, -60.0), Some(481));
    let stereo = Audio::new(48000, 2, delayed.iter().flat_map(|&x| [0.0, x]).collect());
    assert_eq!(stereo.onset(-60.0), Some(481));
}

#[test]
fn wav_writer_and_reader_round_trip() {
    let a = audio::staircase(44100, 2, 0.5);
    let path = audio::dump_wav(&format!("selftest-roundtrip-{}", std::process::id()), &a);
    assert_eq!(audio::read_wav(&path).expect("read back"), a);
    let probe = ffprobe(&path);
    assert_eq!(probe["streams"][0]["sample_rate"], "44100");
    std::fs::remove_file(&path).ok();
}

// ================================================================================================
// Generated media

/// ffprobe's JSON for a file (format, streams).
fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe (installed with ffmpeg by generate.sh)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// A tag from the format or the first stream, matching the key case-insensitively.
fn probe_tag(probe: &serde_json::Value, key: &str) -> Option<String> {
    [&probe["format"]["tags"], &probe["streams"][0]["tags"]]
        .into_iter()
        .find_map(|tags| {
            tags.as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| v.as_str().map(str::to_owned))
        })
}

#[test]
fn staircase_files_probe_as_catalogued() {
    let names: Vec<_> = std::fs::read_dir(media_dir().join("staircase"))
        .expect("staircase dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert_eq!(
        names.len(),
        STAIRCASES.len(),
        "catalogue and directory differ: {names:?}"
    );
    for s in STAIRCASES {
        let p = ffprobe(&media(&format!("staircase/{}", s.file)));
        let stream = &p["streams"][0];
        assert_eq!(stream["codec_name"], s.codec, "{}", s.file);
        assert_eq!(stream["sample_rate"], s.rate.to_string(), "{}", s.file);
        assert_eq!(stream["channels"], s.channels, "{}", s.file);
        let duration: f64 = p["format"]["duration"]
            .as_str()
            .expect("duration")
            .parse()
            .expect("number");
        assert!((duration - 10.0).abs() < 0.1, "{}: {duration} s", s.file);
        if s.codec == "aac" {
            assert_eq!(stream["profile"], "LC", "{}", s.file);
        }
        let (title, artist) = (probe_tag(&p, "title"), probe_tag(&p, "artist"));
        if s.tagged {
            assert_eq!(title.as_deref(), Some("Acoustic Staircase"), "{}", s.file);
            assert_eq!(artist.as_deref(), Some("Acoustic Test Media"), "{}", s.file);
        } else {
            assert_eq!(
                (title, artist),
                (None, None),
                "{} should be untagged",
                s.file
            );
        }
    }
}

#[test]
fn opus_files_are_48k_stereo_with_20ms_packets() {
    for file in ["staircase.opus", "staircase.webm", "staircase.mka"] {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "a:0",
                "-show_entries",
                "packet=duration_time",
                "-of",
                "csv=p=0",
            ])
            .arg(media(&format!("staircase/{file}")))
            .output()
            .expect("ffprobe");
        let durations: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(',').next()?.trim().parse().ok())
            .collect();
        assert!(
            durations.len() >= 499,
            "{file}: {} packets",
            durations.len()
        );
        // Every packet but the last is 20 ms.
        let body = &durations[..durations.len() - 1];
        assert!(
            body.iter().all(|&d| (d - 0.02).abs() < 1e-6),
            "{file}: {body:?}"
        );
    }
}

/// Offsets of the top-level MP4 boxes.
fn mp4_boxes(bytes: &[u8]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        out.push((
            String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned(),
            pos,
        ));
        if size < 8 {
            break;
        }
        pos += size;
    }
    out
}

#[test]
fn m4a_moov_is_first_or_last_as_named() {
    let at = |file: &str, name: &str| {
        let boxes = mp4_boxes(&std::fs::read(media(&format!("staircase/{file}"))).expect("read"));
        boxes
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{file}: no {name} in {boxes:?}"))
            .1
    };
    assert!(at("staircase-faststart.m4a", "moov") < at("staircase-faststart.m4a", "mdat"));
    assert!(at("staircase-moovlast.m4a", "moov") > at("staircase-moovlast.m4a", "mdat"));
}

/// Decodes a whole file with symphonia (plus the libopus adapter, as the node does).
fn decode(path: &Path) -> Result<Audio, String> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::codecs::registry::CodecRegistry;
    use symphonia::core::errors::Error;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| format!("probe: {e}"))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or("no audio track")?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or("no audio parameters")?
        .clone();
    let mut codecs = CodecRegistry::new();
    symphonia::default::register_enabled_codecs(&mut codecs);
    codecs.register_audio_decoder::<symphonia_adapter_libopus::OpusDecoder>();
    let mut decoder = codecs
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| format!("decoder: {e}"))?;
    let (mut rate, mut channels, mut samples) = (0u32, 0usize, Vec::<f32>::new());
    let mut scratch = Vec::<f32>::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => return Err(format!("demux: {e}")),
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                rate = buf.spec().rate();
                channels = buf.spec().channels().count();
                scratch.resize(buf.samples_interleaved(), 0.0);
                buf.copy_to_slice_interleaved(&mut scratch);
                samples.extend_from_slice(&scratch);
            }
            Err(Error::DecodeError(e)) => return Err(format!("decode: {e}")),
            Err(e) => return Err(format!("decode: {e}")),
        }
    }
    if channels == 0 {
        return Err("no audio decoded".into());
    }
    Ok(Audio::new(rate, channels, samples))
}

#[test]
fn every_staircase_decodes_to_the_right_pitches_and_level() {
    for s in STAIRCASES {
        let path = media(&format!("staircase/{}", s.file));
        let a = decode(&path).unwrap_or_else(|e| panic!("{}: {e}", s.file));
        assert_eq!((a.rate, a.channels), (s.rate, s.channels), "{}", s.file);
        assert!(
            (a.duration_s() - 10.0).abs() < 0.1,
            "{}: {} s",
            s.file,
            a.duration_s()
        );
        let steps = audio::staircase_steps(&a.channel(0), a.rate);
        assert_eq!(steps, (0..10).map(Some).collect::<Vec<_>>(), "{}", s.file);
        // Every channel carries the staircase; 5.1 at half the amplitude.
        let expected_db = if s.channels == 6 { -15.05 } else { -9.03 };
        for c in 0..a.channels {
            let ch = a.channel(c);
            let level = audio::rms_dbfs(&ch[a.rate as usize..9 * a.rate as usize]);
            assert!(
                (level - expected_db).abs() < 0.2,
                "{} channel {c}: {level:.2} dBFS",
                s.file
            );
        }
    }
}

#[test]
fn wav_staircases_equal_the_in_memory_staircase() {
    for (file, rate, channels) in [
        ("staircase-44k.wav", 44100, 2),
        ("staircase-48k.wav", 48000, 2),
        ("staircase-mono.wav", 44100, 1),
    ] {
        let got = audio::read_wav(&media(&format!("staircase/{file}"))).expect("read");
        let want = audio::staircase(rate, channels, 10.0);
        assert_eq!(
            (got.rate, got.channels, got.frames()),
            (want.rate, want.channels, want.frames()),
            "{file}"
        );
        let worst = got
            .samples
            .iter()
            .zip(&want.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1.5 / 32768.0, "{file}: differs by {worst}");
    }
}

#[test]
fn helpers_recover_pitches_level_and_position_from_the_wav() {
    let a = audio::read_wav(&media("staircase/staircase-44k.wav")).expect("read");
    let left = a.channel(0);
    for (k, p) in audio::staircase_pitches(&left, a.rate)
        .into_iter()
        .enumerate()
    {
        let p = p.expect("a pitch every second");
        assert!(
            (p - audio::staircase_hz(k)).abs() < 1.0,
            "second {k}: {p} Hz"
        );
    }
    assert!((audio::rms_dbfs(&left) + 9.03).abs() < 0.05);
    assert!((audio::peak_dbfs(&left) + 6.02).abs() < 0.05);
    assert!((audio::channel_correlation(&a, 0, 1) - 1.0).abs() < 1e-6);
    let part = a.seconds(4.25, 6.0);
    let pos = audio::staircase_position(&part.channel(0), a.rate).expect("boundary at 5 s");
    assert!((pos - 4.25).abs() < 0.002, "{pos}");
    // A lossy encoding locates too (codec delay is a few ms at most here).
    let mp3 = decode(&media("staircase/staircase.mp3")).expect("decode");
    let pos = audio::staircase_position(&mp3.seconds(6.5, 8.0).channel(0), mp3.rate)
        .expect("boundary at 7 s");
    assert!((pos - 6.5).abs() < 0.06, "mp3 located at {pos}");
}

#[test]
fn filter_signals_hold_what_they_promise() {
    let k = audio::read_wav(&media("signals/karaoke.wav")).expect("karaoke");
    let (l, r) = (k.channel(0), k.channel(1));
    assert!((audio::tone_amplitude(&l, 48000, 440.0) - 0.25).abs() < 0.005);
    assert!((audio::tone_amplitude(&l, 48000, 1000.0) - 0.25).abs() < 0.005);
    assert!((audio::tone_amplitude(&r, 48000, 440.0) - 0.25).abs() < 0.005);
    assert!(audio::tone_amplitude(&r, 48000, 1000.0) < 0.001);

    let left = audio::read_wav(&media("signals/left-440.wav")).expect("left");
    assert_eq!(audio::peak_dbfs(&left.channel(1)), f64::NEG_INFINITY);
    assert!(
        (audio::dominant_frequency(&left.channel(0)[..24000], 48000).expect("tone") - 440.0).abs()
            < 0.5
    );

    let tone = audio::read_wav(&media("signals/tone-1k.wav")).expect("tone");
    assert!((audio::rms_dbfs(&tone.samples) + 9.03).abs() < 0.05);
    assert!(
        (audio::dominant_frequency(&tone.channel(1)[..24000], 48000).expect("tone") - 1000.0).abs()
            < 0.5
    );

    // White noise: equal power per hertz, so 10–20 kHz holds ~100× the power of 100–200 Hz
    // (+20 dB). Pink noise: equal power per octave, so the two octaves are about equal.
    let octave_gap = |file: &str| {
        let n = audio::read_wav(&media(file)).expect("noise");
        assert!(
            audio::channel_correlation(&n, 0, 1).abs() < 0.05,
            "{file}: channels are independent"
        );
        let ch = n.channel(0);
        audio::band_dbfs(&ch, 48000, 10_000.0, 20_000.0)
            - audio::band_dbfs(&ch, 48000, 100.0, 200.0)
    };
    let white = octave_gap("signals/white-noise.wav");
    let pink = octave_gap("signals/pink-noise.wav");
    assert!(
        (white - 20.0).abs() < 2.0,
        "white noise octave gap {white:.1} dB"
    );
    assert!(pink.abs() < 3.0, "pink noise octave gap {pink:.1} dB");
}

#[test]
fn faults_are_truncated_corrupt_empty_lying_or_not_audio() {
    let dir = media_dir();
    for name in FAULT_SOURCES {
        let good = std::fs::read(dir.join("staircase").join(name)).expect("source");
        let truncated = std::fs::read(dir.join("faults/truncated").join(name)).expect("truncated");
        assert_eq!(truncated.len(), good.len() / 2, "{name}");
        assert_eq!(
            truncated[..],
            good[..good.len() / 2],
            "{name}: truncation is a prefix"
        );

        let corrupt = std::fs::read(dir.join("faults/corrupt").join(name)).expect("corrupt");
        assert_eq!(corrupt.len(), good.len(), "{name}");
        let half = good.len() / 2;
        assert_eq!(
            corrupt[..half],
            good[..half],
            "{name}: bytes before the damage kept"
        );
        assert_eq!(
            corrupt[half + 4096..],
            good[half + 4096..],
            "{name}: bytes after the damage kept"
        );
        let changed = corrupt[half..half + 4096]
            .iter()
            .zip(&good[half..half + 4096])
            .filter(|(a, b)| a != b)
            .count();
        assert!(changed > 3000, "{name}: only {changed} bytes changed");
    }
    // A truncated moov-last MP4 has no moov at all; a truncated MP3 still decodes its first half.
    assert!(decode(&dir.join("faults/truncated/staircase-moovlast.m4a")).is_err());
    let half =
        decode(&dir.join("faults/truncated/staircase.mp3")).expect("first half of an MP3 decodes");
    assert!(
        (half.duration_s() - 5.0).abs() < 0.2,
        "{}",
        half.duration_s()
    );

    assert_eq!(
        std::fs::metadata(dir.join("faults/empty.mp3"))
            .expect("empty")
            .len(),
        0
    );
    assert!(decode(&dir.join("faults/empty.mp3")).is_err());

    let html = std::fs::read_to_string(dir.join("faults/not-audio.mp3")).expect("html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(decode(&dir.join("faults/not-audio.mp3")).is_err());

    let lying = std::fs::read(dir.join("faults/ten-hours.wav")).expect("ten hours");
    let u32_at = |o: usize| u32::from_le_bytes(lying[o..o + 4].try_into().expect("4 bytes"));
    assert_eq!(&lying[36..40], b"data");
    let declared = u64::from(u32_at(40));
    assert_eq!(
        declared,
        10 * 3600 * 44100 * 2,
        "the header claims ten hours of 44.1 kHz mono 16-bit"
    );
    assert_eq!(lying.len(), 44 + 44100 * 2, "the body is one second");
    let body = audio::read_wav(&dir.join("faults/ten-hours.wav")).expect("read what is there");
    assert_eq!((body.rate, body.channels, body.frames()), (44100, 1, 44100));
    assert!(
        (audio::dominant_frequency(&body.samples[11025..33075], 44100).expect("tone") - 200.0)
            .abs()
            < 1.0
    );
}

#[test]
fn playlists_list_existing_files_by_relative_url() {
    let dir = media_dir();
    let m3u = std::fs::read_to_string(dir.join("playlist.m3u")).expect("m3u");
    assert!(m3u.starts_with("#EXTM3U"));
    let m3u_entries: Vec<&str> = m3u
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let pls = std::fs::read_to_string(dir.join("playlist.pls")).expect("pls");
    assert!(pls.starts_with("[playlist]"));
    assert!(pls.contains("NumberOfEntries=3"));
    let pls_entries: Vec<&str> = pls
        .lines()
        .filter_map(|l| {
            l.strip_prefix("File")
                .and_then(|r| r.split_once('='))
                .map(|(_, v)| v)
        })
        .collect();
    assert_eq!((m3u_entries.len(), pls_entries.len()), (3, 3));
    for entry in m3u_entries.into_iter().chain(pls_entries) {
        assert!(
            !entry.contains("://") && !entry.starts_with('/'),
            "{entry} is relative"
        );
        assert!(
            dir.join(entry).is_file(),
            "{entry} exists next to the playlist"
        );
    }
}

#[test]
fn generation_is_idempotent() {
    let dir = media_dir();
    let stamp = dir.join(".stamp");
    let before = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .expect("stamp");
    let started = Instant::now();
    let status = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/generate.sh"))
        .arg(dir)
        .status()
        .expect("run generate.sh");
    assert!(status.success());
    let after = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .expect("stamp");
    assert_eq!(before, after, "an up-to-date directory is left alone");
    eprintln!("up-to-date check took {:?}", started.elapsed());
}

// ================================================================================================
// Media server

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Reads a response body until its end or an error; returns the bytes and whether it ended
/// cleanly.
async fn read_body(mut resp: reqwest::Response) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            Ok(None) => return (body, true),
            Err(_) => return (body, false),
        }
    }
}

#[tokio::test]
async fn serves_files_with_type_length_and_ranges() {
    let server = MediaServer::start(media_dir());
    let file = std::fs::read(media("staircase/staircase.mp3")).expect("file");
    let len = file.len();
    let url = server.url("staircase/staircase.mp3");
    let c = client();

    let resp = c.get(&url).send().await.expect("GET");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    assert_eq!(resp.headers()["content-length"], len.to_string());
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(resp.bytes().await.expect("body")[..], file[..]);

    for (range, from, to) in [
        ("bytes=100-199", 100, 200),
        ("bytes=-100", len - 100, len),
        ("bytes=5000-", 5000, len),
    ] {
        let resp = c
            .get(&url)
            .header("range", range)
            .send()
            .await
            .expect("GET range");
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {from}-{}/{len}", to - 1),
            "{range}"
        );
        assert_eq!(
            resp.headers()["content-length"],
            (to - from).to_string(),
            "{range}"
        );
        assert_eq!(
            resp.bytes().await.expect("body")[..],
            file[from..to],
            "{range}"
        );
    }
    let resp = c
        .get(&url)
        .header("range", format!("bytes={len}-"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], format!("bytes */{len}"));

    let resp = c.head(&url).send().await.expect("HEAD");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], len.to_string());
    assert_eq!(resp.bytes().await.expect("no body").len(), 0);

    for (path, ty) in [
        ("staircase/staircase-faststart.m4a", "audio/mp4"),
        ("staircase/staircase.flac", "audio/flac"),
        ("staircase/staircase.webm", "audio/webm"),
        ("playlist.pls", "audio/x-scpls"),
    ] {
        let resp = c.head(server.url(path)).send().await.expect("HEAD");
        assert_eq!(resp.headers()["content-type"], ty, "{path}");
    }

    let resp = c
        .get(server.url("staircase/nope.mp3"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 404);
    let resp = c
        .get(server.url("../Cargo.toml"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 404, "nothing outside the root");
}

#[tokio::test]
async fn scripted_statuses_and_no_range() {
    let server = MediaServer::start(media_dir());
    let c = client();
    let path = "staircase/staircase.flac";
    let url = server.url(path);

    server.script(path, Script::new().not_found());
    assert_eq!(c.get(&url).send().await.expect("GET").status(), 404);
    server.script(path, Script::new().server_error());
    assert_eq!(c.get(&url).send().await.expect("GET").status(), 500);
    assert_eq!(
        c.get(&url).send().await.expect("GET").status(),
        500,
        "always"
    );

    server.script(
        path,
        Script::new()
            .too_many_requests(Times::N(2))
            .header("retry-after", "1"),
    );
    let first = c.get(&url).send().await.expect("GET");
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "1");
    assert_eq!(c.get(&url).send().await.expect("GET").status(), 429);
    assert_eq!(
        c.get(&url).send().await.expect("GET").status(),
        200,
        "after two 429s"
    );

    server.script(path, Script::new().no_range());
    let resp = c
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("accept-ranges").is_none());
    let len = std::fs::metadata(media(path)).expect("meta").len() as usize;
    assert_eq!(resp.bytes().await.expect("body").len(), len);

    server.script(path, Script::new().content_type(Some("text/html")));
    let resp = c.head(&url).send().await.expect("HEAD");
    assert_eq!(resp.headers()["content-type"], "text/html");

    server.clear_script(path);
    assert_eq!(
        c.get(&url)
            .header("range", "bytes=0-9")
            .send()
            .await
            .expect("GET")
            .status(),
        206
    );

    server.put(
        "/live/custom.m3u",
        "#EXTM3U\nhttp://example.invalid/a.mp3\n",
        Some("audio/x-mpegurl"),
    );
    let resp = c
        .get(server.url("live/custom.m3u"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.headers()["content-type"], "audio/x-mpegurl");
    assert!(resp.text().await.expect("text").starts_with("#EXTM3U"));
}

#[tokio::test]
async fn redirect_chains() {
    let server = MediaServer::start(media_dir());
    let path = "staircase/staircase.ogg";
    server.script(path, Script::new().redirects(3));
    let resp = client().get(server.url(path)).send().await.expect("GET");
    assert_eq!(resp.status(), 200);
    assert!(resp.url().as_str().ends_with("?hop=3"), "{}", resp.url());
    let log = server.requests_for(path);
    let seen: Vec<_> = log.iter().map(|r| (r.query.clone(), r.status)).collect();
    assert_eq!(
        seen,
        vec![
            (None, 302),
            (Some("hop=1".into()), 302),
            (Some("hop=2".into()), 302),
            (Some("hop=3".into()), 200)
        ]
    );

    // A client limited to 5 redirects gives up on a chain of 6.
    server.script(path, Script::new().redirects(6).redirect_status(307));
    let limited = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .expect("client");
    assert!(limited.get(server.url(path)).send().await.is_err());
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = no_follow.get(server.url(path)).send().await.expect("GET");
    assert_eq!(resp.status(), 307);
    assert_eq!(
        resp.headers()["location"],
        server.url(&format!("{path}?hop=1"))
    );
}

#[tokio::test]
async fn drops_the_connection_after_n_bytes() {
    let server = MediaServer::start(media_dir());
    let path = "staircase/staircase.opus";
    let file = std::fs::read(media(path)).expect("file");
    let url = server.url(path);
    let c = client();

    // Once: the first response is cut at exactly 10 000 bytes, the next is whole.
    server.script(path, Script::new().drop_after(10_000, Times::Once));
    let (body, clean) = read_body(c.get(&url).send().await.expect("GET")).await;
    assert!(!clean, "the client sees the connection end early");
    assert_eq!(body[..], file[..10_000]);
    let (body, clean) = read_body(c.get(&url).send().await.expect("GET")).await;
    assert!(clean);
    assert_eq!(body, file);

    // Always: a client that resumes with Range from what it has gets 50 000 bytes per
    // connection and still assembles the whole file.
    server.clear_log();
    server.script(path, Script::new().drop_after(50_000, Times::Always));
    let mut got = Vec::new();
    while got.len() < file.len() {
        let resp = c
            .get(&url)
            .header("range", format!("bytes={}-", got.len()))
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 206);
        let (body, _) = read_body(resp).await;
        assert!(!body.is_empty());
        got.extend(body);
    }
    assert_eq!(got, file);
    let log = server.requests_for(path);
    let starts: Vec<u64> = log
        .iter()
        .map(|r| r.range_start().expect("range"))
        .collect();
    let expected: Vec<u64> = (0..file.len() as u64).step_by(50_000).collect();
    assert_eq!(starts, expected);
    let connections: std::collections::HashSet<u64> = log.iter().map(|r| r.connection).collect();
    assert_eq!(
        connections.len(),
        log.len(),
        "every drop forces a new connection"
    );
}

#[tokio::test]
async fn stalls_after_n_bytes_with_the_socket_open() {
    let server = MediaServer::start(media_dir());
    let path = "staircase/staircase.webm";
    let file = std::fs::read(media(path)).expect("file");
    server.script(path, Script::new().stall_after(3000, Times::Once));
    let c = client();

    let mut resp = c.get(server.url(path)).send().await.expect("GET");
    let mut got = Vec::new();
    while got.len() < 3000 {
        got.extend(resp.chunk().await.expect("chunk").expect("more"));
    }
    assert_eq!(got[..], file[..3000]);
    // Nothing more arrives, and the connection is neither closed nor failed.
    let next = tokio::time::timeout(Duration::from_millis(500), resp.chunk()).await;
    assert!(next.is_err(), "a stalled response yields nothing: {next:?}");

    // Once: the next request is served whole.
    let (body, clean) = read_body(c.get(server.url(path)).send().await.expect("GET")).await;
    assert!(clean);
    assert_eq!(body, file);
}

#[tokio::test]
async fn throttles_to_a_byte_rate() {
    let server = MediaServer::start_empty();
    server.put("blob.bin", vec![7u8; 20_000], None);
    server.script("blob.bin", Script::new().throttle(40_000));
    let started = Instant::now();
    let (body, clean) = read_body(
        client()
            .get(server.url("blob.bin"))
            .send()
            .await
            .expect("GET"),
    )
    .await;
    assert!(clean);
    assert_eq!(body.len(), 20_000);
    // 20 000 bytes at 40 000 B/s cannot arrive in less than ~0.5 s (the last 2 000-byte chunk
    // is due at 0.45 s). Only the lower bound is asserted: it does not depend on machine speed.
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn logs_every_request() {
    let server = MediaServer::start(media_dir());
    let c = client();
    let t0 = Instant::now();
    // Bodies are read to the end so that the client can reuse its connection.
    let ranged = c
        .get(server.url("staircase/staircase.mp3"))
        .header("range", "bytes=10-20");
    assert_eq!(
        read_body(ranged.send().await.expect("GET")).await.0.len(),
        11
    );
    read_body(
        c.head(server.url("playlist.m3u"))
            .send()
            .await
            .expect("HEAD"),
    )
    .await;
    read_body(c.get(server.url("missing.mp3")).send().await.expect("GET")).await;
    let log = server.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(
        log.iter()
            .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
            .collect::<Vec<_>>(),
        vec![
            ("GET", "/staircase/staircase.mp3", 206),
            ("HEAD", "/playlist.m3u", 200),
            ("GET", "/missing.mp3", 404)
        ]
    );
    assert_eq!(log[0].range.as_deref(), Some("bytes=10-20"));
    assert_eq!(log[0].range_start(), Some(10));
    assert_eq!(log[1].range, None);
    assert!(
        log.iter()
            .all(|r| r.peer.ip().is_loopback() && r.peer.port() != server.addr().port())
    );
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at) && log[0].at >= t0);
    assert_eq!(
        log[0].header("host"),
        Some(server.addr().to_string().as_str())
    );
    // Keep-alive: one client, one connection.
    assert!(log.iter().all(|r| r.connection == log[0].connection));
}

#[test]
fn works_from_sync_code_and_closes_on_drop() {
    use std::io::{Read, Write};
    let server = MediaServer::start(media_dir());
    server.script("playlist.m3u", Script::new().stall_after(5, Times::Always));
    let mut s = std::net::TcpStream::connect(server.addr()).expect("connect");
    s.write_all(b"GET /playlist.m3u HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\n#EXTM") {
        let n = s.read(&mut buf).expect("read head and 5 body bytes");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    drop(server);
    // Dropping the server closes even a stalled connection.
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to be closed, got {other:?}"),
    }
}
