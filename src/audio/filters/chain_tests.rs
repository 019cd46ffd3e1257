//! Tests of the chain as a whole: signal order, bypass, hot swaps, reset, robustness against any
//! finite parameters (proptest), and that `process` allocates nothing once warmed up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;

use super::test_signal::*;
use super::*;
use crate::protocol::filters::{
    Band, ChannelMix as ChannelMixCfg, Distortion as DistortionCfg, Karaoke as KaraokeCfg,
    LowPass as LowPassCfg, Rotation as RotationCfg, Timescale as TimescaleCfg,
    Tremolo as TremoloCfg, Vibrato as VibratoCfg,
};

/// Counts heap allocations made by the current thread, so a test can check that a stretch of
/// code allocates nothing (other tests run on other threads and do not disturb the count).
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_allocation() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const ALL_TEN: &str = r#"{
    "volume": 0.8,
    "equalizer": [{"band": 0, "gain": 0.2}, {"band": 8, "gain": -0.1}, {"band": 14, "gain": 0.3}],
    "karaoke": {"level": 0.7},
    "timescale": {"speed": 1.1, "pitch": 1.05, "rate": 1.02},
    "tremolo": {"frequency": 3, "depth": 0.3},
    "vibrato": {"frequency": 4, "depth": 0.3},
    "rotation": {"rotationHz": 0.2},
    "distortion": {"scale": 0.9},
    "channelMix": {"leftToRight": 0.2, "rightToLeft": 0.2},
    "lowPass": {"smoothing": 2}
}"#;

/// A signal with some of everything: two tones, different per side, and a little noise.
fn music(secs: f64) -> Vec<f32> {
    let mut seed = 0x2545_f491_u32;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed as f32 / u32::MAX as f32 - 0.5) * 0.1
    };
    let n: Vec<f32> = (0..(secs * FS) as usize * 2).map(|_| noise()).collect();
    let mut s = stereo(
        |t| 0.4 * tone(220.0, t) + 0.2 * tone(3300.0, t),
        |t| 0.3 * tone(330.0, t) + 0.2 * tone(5100.0, t),
        secs,
    );
    s.iter_mut().zip(n).for_each(|(s, n)| *s += n);
    s
}

#[test]
fn no_active_filter_means_bypass() {
    let c = chain(r#"{"distortion":{},"timescale":{},"channelMix":{},"equalizer":[]}"#);
    assert!(!c.is_active());
    assert!(!FilterChain::would_be_active(&filters(
        r#"{"volume":1.0,"lowPass":{"smoothing":0.5}}"#
    )));
    assert!(FilterChain::would_be_active(&filters(ALL_TEN)));
    assert!(chain(ALL_TEN).is_active());
    // A bypassed chain hands the input through untouched.
    let input = music(0.05);
    assert_eq!(run(&Filters::default(), &input), input);
}

#[test]
fn channel_mix_runs_before_rotation() {
    // Left-only tone; channelMix swaps it to the right, then rotation scales the right side by
    // (1 − sin φ)/2, which starts by falling. The other order would make it rise first.
    let input = stereo(|t| 0.5 * tone(1000.0, t), |_| 0.0, 1.0);
    let out = run(
        &filters(
            r#"{"rotation":{"rotationHz":0.5},
                "channelMix":{"leftToLeft":0,"leftToRight":1,"rightToLeft":1,"rightToRight":0}}"#,
        ),
        &input,
    );
    let env = envelope(&right(&out), 4800);
    assert!(env[4] < env[0] * 0.6, "{env:?}");
    assert!(rms(&left(&out)) < 1e-6);
}

#[test]
fn tremolo_runs_before_timescale() {
    // A 2 Hz tremolo in source time becomes 4 Hz when the timescale doubles the tempo; after
    // the timescale it would have stayed at 2 Hz.
    let input = sine(1000.0, 0.5, 4.0);
    let out = run(
        &filters(r#"{"tremolo":{"frequency":2,"depth":0.8},"timescale":{"rate":2}}"#),
        &input,
    );
    let env = envelope(&left(&out), 240);
    let secs = out.len() as f64 / 2.0 / FS;
    let per_second = mean_crossings(&env) as f64 / secs;
    assert!((per_second - 8.0).abs() < 1.0, "{per_second} crossings/s");
}

#[test]
fn volume_runs_last_so_its_cut_is_not_undone_by_a_clamp_before_it() {
    // The equalizer boosts the 1 kHz band ×5 into the clamp; volume 0.5 after it scales the
    // clamped signal, so the peak lands exactly at 1 × tan(0.395).
    let input = sine(1000.0, 0.9, 1.0);
    let out = run(
        &filters(r#"{"equalizer":[{"band":8,"gain":1.0}],"volume":0.5}"#),
        &input,
    );
    let peak = left(&out)[24000..].iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!((peak - (0.79f32 * 0.5).tan()).abs() < 1e-4, "peak {peak}");
}

#[test]
fn hot_swaps_within_a_filter_are_smooth() {
    // A 440 Hz tone at 0.25; settings change every 100 ms, each within the same filters.
    let steps = [
        r#"{"volume":0.5,"equalizer":[{"band":6,"gain":0.2}],"tremolo":{"frequency":2,"depth":0.2}}"#,
        r#"{"volume":2.0,"equalizer":[{"band":6,"gain":-0.2}],"tremolo":{"frequency":6,"depth":0.5}}"#,
        r#"{"volume":0.8,"equalizer":[{"band":6,"gain":0.5},{"band":2,"gain":0.4}],"tremolo":{"frequency":1,"depth":0.1}}"#,
        r#"{"volume":1.5,"equalizer":[{"band":2,"gain":0.1}],"tremolo":{"frequency":3,"depth":0.6}}"#,
    ];
    let configs: Vec<Filters> = steps.iter().map(|s| filters(s)).collect();
    let input = sine(440.0, 0.25, 2.0);
    let mut c = FilterChain::new(&configs[0]);
    let mut out = Vec::new();
    for (i, block) in input.chunks(2 * BLOCK_FRAMES).enumerate() {
        if i % 5 == 0 {
            c.update(&configs[(i / 5) % configs.len()]);
        }
        c.process(block, &mut out);
    }
    assert_eq!(out.len(), input.len());
    assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    // The natural step of a 440 Hz tone at the loudest setting (about ×2.5 of 0.25 with the
    // boosts) is under 0.04; a gain that jumped instead of gliding would step far more.
    let step = max_step(&left(&out));
    assert!(step < 0.06, "largest step {step}");
}

#[test]
fn hot_swapping_the_timescale_stays_finite_and_continuous() {
    // Speed alone and rate alone change without any dip.
    for steps in [
        [
            r#"{"timescale":{"speed":1.2}}"#,
            r#"{"timescale":{"speed":0.8}}"#,
        ],
        [
            r#"{"timescale":{"rate":1.2}}"#,
            r#"{"timescale":{"rate":0.8}}"#,
        ],
    ] {
        let configs: Vec<Filters> = steps.iter().map(|s| filters(s)).collect();
        let input = sine(300.0, 0.4, 2.0);
        let mut c = FilterChain::new(&configs[0]);
        let mut out = Vec::new();
        for (i, block) in input.chunks(2 * BLOCK_FRAMES).enumerate() {
            if i % 25 == 0 {
                c.update(&configs[(i / 25) % 2]);
            }
            c.process(block, &mut out);
        }
        let l = left(&out);
        let (lo, hi) = min_max(&envelope(&l[12_000..], 480));
        let level = 0.4 / 2f64.sqrt();
        assert!(
            lo > 0.9 * level && hi < 1.1 * level,
            "{steps:?}: {lo} .. {hi}"
        );
        assert!(max_step(&l) < 0.03, "{steps:?}: step {}", max_step(&l));
    }
    // All three, every combination of stages appearing and changing.
    let steps = [
        r#"{"timescale":{"speed":1.2}}"#,
        r#"{"timescale":{"speed":0.8,"pitch":1.2}}"#,
        r#"{"timescale":{"speed":0.8,"pitch":1.2,"rate":1.3}}"#,
        r#"{"timescale":{"speed":1.0,"pitch":0.9,"rate":0.7}}"#,
        r#"{"timescale":{"speed":1.5,"pitch":1.0,"rate":1.0}}"#,
    ];
    let configs: Vec<Filters> = steps.iter().map(|s| filters(s)).collect();
    let input = sine(300.0, 0.4, 3.0);
    let mut c = FilterChain::new(&configs[0]);
    let mut out = Vec::new();
    for (i, block) in input.chunks(2 * BLOCK_FRAMES).enumerate() {
        if i % 25 == 0 {
            let cfg = &configs[(i / 25) % configs.len()];
            c.update(cfg);
            let t = cfg.timescale.unwrap();
            assert!((c.time_ratio() - t.speed * t.rate).abs() < 1e-12);
        }
        c.process(block, &mut out);
    }
    assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    // After the stretcher's fade-in the level never drops out and never spikes. (Pitch jumps
    // dip a pure tone by up to about 8 dB for a block; speed and rate changes do not dip.)
    let l = left(&out);
    let env = envelope(&l[12_000..], 480);
    let (lo, hi) = min_max(&env);
    let level = 0.4 / 2f64.sqrt();
    assert!(lo > 0.3 * level && hi < 1.3 * level, "{lo} .. {hi}");
    // Highest tone here is 300 Hz × 1.2 × 1.3 ≈ 470 Hz: steps stay near its natural size.
    let step = max_step(&l[12_000..]);
    assert!(step < 0.1, "largest step {step}");
}

#[test]
fn adding_and_removing_filters_mid_track_stays_finite_and_bounded() {
    let steps = [
        ALL_TEN,
        "{}",
        r#"{"karaoke":{},"lowPass":{}}"#,
        ALL_TEN,
        r#"{"volume":3}"#,
    ];
    let configs: Vec<Filters> = steps.iter().map(|s| filters(s)).collect();
    let input = music(2.0);
    let mut c = FilterChain::default();
    let mut out = Vec::new();
    for (i, block) in input.chunks(2 * BLOCK_FRAMES).enumerate() {
        if i % 10 == 0 {
            c.update(&configs[(i / 10) % configs.len()]);
        }
        c.process(block, &mut out);
    }
    assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    assert!(rms(&out) > 0.05);
}

#[test]
fn bad_input_samples_do_not_poison_the_filters() {
    let mut input = sine(1000.0, 0.5, 0.5);
    input[1000] = f32::NAN;
    input[1001] = f32::INFINITY;
    input[5000] = -1e30;
    let out = run(&filters(ALL_TEN), &input);
    assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    // The stateful filters recover: the end sounds as it does without the bad samples.
    let clean = run(&filters(ALL_TEN), &sine(1000.0, 0.5, 0.5));
    let tail = |x: &[f32]| rms(&x[x.len() - 9600..]);
    assert!(
        (tail(&out) / tail(&clean) - 1.0).abs() < 0.05,
        "{} vs {}",
        tail(&out),
        tail(&clean)
    );
}

#[test]
fn reset_forgets_history() {
    // A long low-pass remembers the loud past; after reset it restarts at the new input.
    let mut c = chain(r#"{"lowPass":{"smoothing":10000},"equalizer":[{"band":0,"gain":1}]}"#);
    let mut out = Vec::new();
    c.process(&vec![0.9; 2 * 4800], &mut out);
    c.reset();
    out.clear();
    c.process(&vec![0.0; 2 * 960], &mut out);
    assert!(out.iter().all(|&v| v == 0.0), "{:?}", &out[..4]);
    // With a timescale, reset drops buffered audio: silence in, silence out.
    let mut c = chain(ALL_TEN);
    let loud = music(0.5);
    for block in loud.chunks(1920) {
        c.process(block, &mut out);
    }
    c.reset();
    out.clear();
    for _ in 0..20 {
        c.process(&[0.0; 1920], &mut out);
    }
    assert!(out.iter().all(|&v| v.abs() < 1e-4), "{}", rms(&out));
}

#[test]
fn odd_and_empty_inputs_are_fine() {
    let mut c = chain(ALL_TEN);
    let mut out = Vec::new();
    c.process(&[], &mut out);
    c.process(&[0.5], &mut out);
    c.process(&[0.5, 0.5, 0.5], &mut out);
    assert!(out.len() % 2 == 0);
}

#[test]
fn process_does_not_allocate_once_warm() {
    let input = music(1.0);
    let mut c = chain(ALL_TEN);
    let mut out = Vec::with_capacity(8 * BLOCK_FRAMES);
    let mut blocks = input.chunks_exact(2 * BLOCK_FRAMES).cycle();
    for _ in 0..25 {
        out.clear();
        c.process(blocks.next().unwrap(), &mut out);
    }
    let before = allocations();
    for _ in 0..100 {
        out.clear();
        c.process(blocks.next().unwrap(), &mut out);
    }
    assert_eq!(allocations() - before, 0);
    // The same after a seek and after a hot swap within the same filters.
    c.reset();
    c.update(&filters(
        &ALL_TEN.replace("0.8", "0.6").replace("1.1", "1.2"),
    ));
    for _ in 0..25 {
        out.clear();
        c.process(blocks.next().unwrap(), &mut out);
    }
    let before = allocations();
    for _ in 0..100 {
        out.clear();
        c.process(blocks.next().unwrap(), &mut out);
    }
    assert_eq!(allocations() - before, 0);
}

// ---- random parameters ----

fn finite_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => -2.0f32..2.0,
        1 => -1e4f32..1e4,
        1 => prop::num::f32::NORMAL | prop::num::f32::SUBNORMAL | prop::num::f32::ZERO,
    ]
}

fn factor() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.05f64..4.0,
        1 => Just(1.0),
        1 => prop::num::f64::NORMAL | prop::num::f64::ZERO,
    ]
}

prop_compose! {
    fn any_filters()(
        volume in prop::option::of(finite_f32()),
        equalizer in prop::option::of(prop::collection::vec((0i32..15, finite_f32()), 0..6)),
        karaoke in prop::option::of((finite_f32(), finite_f32(), finite_f32(), finite_f32())),
        timescale in prop::option::of((factor(), factor(), factor())),
        tremolo in prop::option::of((finite_f32(), finite_f32())),
        vibrato in prop::option::of((finite_f32(), finite_f32())),
        rotation in prop::option::of(prop::num::f64::NORMAL | prop::num::f64::ZERO),
        distortion in prop::option::of(prop::array::uniform8(finite_f32())),
        channel_mix in prop::option::of(prop::array::uniform4(finite_f32())),
        low_pass in prop::option::of(finite_f32()),
    ) -> Filters {
        Filters {
            volume,
            equalizer: equalizer.map(|v| v.into_iter().map(|(band, gain)| Band { band, gain }).collect()),
            karaoke: karaoke.map(|(level, mono_level, filter_band, filter_width)| KaraokeCfg {
                level, mono_level, filter_band, filter_width,
            }),
            timescale: timescale.map(|(speed, pitch, rate)| TimescaleCfg { speed, pitch, rate }),
            tremolo: tremolo.map(|(frequency, depth)| TremoloCfg { frequency, depth }),
            vibrato: vibrato.map(|(frequency, depth)| VibratoCfg { frequency, depth }),
            rotation: rotation.map(|rotation_hz| RotationCfg { rotation_hz }),
            distortion: distortion.map(|d| DistortionCfg {
                sin_offset: d[0], sin_scale: d[1], cos_offset: d[2], cos_scale: d[3],
                tan_offset: d[4], tan_scale: d[5], offset: d[6], scale: d[7],
            }),
            channel_mix: channel_mix.map(|m| ChannelMixCfg {
                left_to_left: m[0], left_to_right: m[1], right_to_left: m[2], right_to_right: m[3],
            }),
            low_pass: low_pass.map(|smoothing| LowPassCfg { smoothing }),
            ..Filters::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_finite_parameters_give_finite_bounded_output(
        first in any_filters(),
        second in any_filters(),
        chunks in prop::collection::vec(0usize..3000, 1..12),
    ) {
        let input = music(0.25);
        let mut c = FilterChain::new(&first);
        let mut out = Vec::new();
        let mut at = 0;
        for (i, &len) in chunks.iter().enumerate() {
            if i == chunks.len() / 2 {
                c.update(&second);
            }
            let end = (at + len).min(input.len());
            c.process(&input[at..end], &mut out);
            at = if end == input.len() { 0 } else { end };
        }
        prop_assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
        prop_assert!(c.time_ratio().is_finite() && c.time_ratio() > 0.0);
    }
}
