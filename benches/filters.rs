//! Cost of the filter chain per 20 ms stereo frame (960 frames at 48 kHz): no filter (the
//! bypass copy), all ten filters active, and each filter alone for the breakdown.
//!
//! `cargo bench --bench filters`; one 20 ms frame must cost far less than 20 ms of one core
//! (divide the time by 20 ms for the share of a core one player's filters take).

use std::hint::black_box;

use acoustic::audio::filters::FilterChain;
use acoustic::protocol::filters::Filters;
use criterion::{Criterion, criterion_group, criterion_main};

const FRAME: usize = 960;

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

const SINGLE: [(&str, &str); 13] = [
    ("volume", r#"{"volume":0.8}"#),
    (
        "equalizer_15_bands",
        r#"{"equalizer":[{"band":0,"gain":0.1},{"band":1,"gain":0.1},{"band":2,"gain":0.1},
            {"band":3,"gain":0.1},{"band":4,"gain":0.1},{"band":5,"gain":0.1},{"band":6,"gain":0.1},
            {"band":7,"gain":0.1},{"band":8,"gain":0.1},{"band":9,"gain":0.1},{"band":10,"gain":0.1},
            {"band":11,"gain":0.1},{"band":12,"gain":0.1},{"band":13,"gain":0.1},{"band":14,"gain":0.1}]}"#,
    ),
    (
        "equalizer_5_bands",
        r#"{"equalizer":[{"band":0,"gain":0.2},{"band":1,"gain":0.15},{"band":2,"gain":0.1},
            {"band":3,"gain":0.05},{"band":4,"gain":0.05}]}"#,
    ),
    ("karaoke", r#"{"karaoke":{}}"#),
    ("timescale_speed", r#"{"timescale":{"speed":1.25}}"#),
    ("timescale_pitch", r#"{"timescale":{"pitch":1.25}}"#),
    ("timescale_rate", r#"{"timescale":{"rate":1.25}}"#),
    ("tremolo", r#"{"tremolo":{}}"#),
    ("vibrato", r#"{"vibrato":{}}"#),
    ("rotation", r#"{"rotation":{"rotationHz":0.2}}"#),
    ("distortion", r#"{"distortion":{"scale":0.9}}"#),
    ("channel_mix", r#"{"channelMix":{"leftToRight":0.5}}"#),
    ("low_pass", r#"{"lowPass":{}}"#),
];

/// One second of music-like stereo: two tones per side and a little noise.
fn signal() -> Vec<f32> {
    let mut seed = 0x9e37_79b9_u32;
    (0..48_000)
        .flat_map(|i| {
            let t = i as f32 / 48_000.0;
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = (seed as f32 / u32::MAX as f32 - 0.5) * 0.05;
            let tau = std::f32::consts::TAU;
            [
                0.4 * (tau * 220.0 * t).sin() + 0.2 * (tau * 3300.0 * t).sin() + noise,
                0.3 * (tau * 330.0 * t).sin() + 0.2 * (tau * 5100.0 * t).sin() - noise,
            ]
        })
        .collect()
}

fn bench_chain(c: &mut Criterion) {
    let input = signal();
    let mut group = c.benchmark_group("filters_per_20ms_frame");
    let cases = [("none", "{}"), ("all_ten", ALL_TEN)]
        .into_iter()
        .chain(SINGLE);
    for (name, json) in cases {
        let filters: Filters = serde_json::from_str(json).expect("bench filter JSON");
        let mut chain = FilterChain::new(&filters);
        let mut out = Vec::with_capacity(16 * FRAME);
        let mut frames = input.chunks_exact(2 * FRAME).cycle();
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                chain.process(black_box(frames.next().unwrap_or_default()), &mut out);
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_chain);
criterion_main!(benches);
