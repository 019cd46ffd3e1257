//! Fuzz-style property tests of everything that parses client input: the track codec
//! (`decode_track`, `decode_message`) and the JSON request bodies (`UpdatePlayer`,
//! `UpdateSession`, `Filters` with `Filters::validate`, and the `/v4/decodetracks` string array).
//!
//! The inputs are arbitrary bytes, arbitrary strings, arbitrary JSON values built from the field
//! names those bodies use, and mutations of valid inputs. Every parser must answer with a value or
//! an error, never a panic; where a parse succeeds, the tests also check that what a client would
//! get back is self-consistent (a decoded track re-encodes to the same track; validated filters
//! echo to JSON that parses to the same filters).

use acoustic::protocol::filters::Filters;
use acoustic::protocol::player::{UpdatePlayer, UpdateSession};
use acoustic::protocol::track::TrackInfo;
use acoustic::protocol::track_codec::{
    DetailsLayout, SourceDetails, TrackDecodeError, decode_message, decode_track, encode_track,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------- track codec

/// The three answers a source lookup can give.
fn layout_for(kind: u8) -> impl Fn(&str) -> Option<DetailsLayout> {
    move |_| match kind % 3 {
        0 => Some(DetailsLayout::Empty),
        1 => Some(DetailsLayout::ProbeInfo),
        _ => None,
    }
}

fn sample_track(title: String, probe: Option<String>) -> (TrackInfo, SourceDetails) {
    let info = TrackInfo {
        identifier: "https://example.com/a.mp3".into(),
        is_seekable: true,
        author: "Someone 🎤".into(),
        length: 180_000,
        is_stream: false,
        position: 1234,
        title,
        uri: Some("https://example.com/a.mp3".into()),
        artwork_url: None,
        isrc: Some("USRC17607839".into()),
        source_name: "http".into(),
    };
    let details = probe.map_or(SourceDetails::None, SourceDetails::ProbeInfo);
    (info, details)
}

/// A byte edit applied to a valid message.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        // Printable ASCII keeps strings valid, so more mutants get past the string decoder.
        3 => (any::<usize>(), 0x20u8..0x7F).prop_map(|(i, b)| Edit::Set(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        let n = bytes.len();
        match *e {
            Edit::Set(i, b) if n > 0 => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Edit::Remove(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Edit::Truncate(i) => bytes.truncate(i % (n + 1)),
            _ => {}
        }
    }
}

/// A message whose header is well-formed (any flags, a size that may or may not match) and
/// whose body is garbage, optionally starting with a plausible version byte.
fn header_with_garbage_body() -> impl Strategy<Value = Vec<u8>> {
    (
        0u32..4,
        vec(any::<u8>(), 0..300),
        prop_oneof![Just(None), (0u8..6).prop_map(Some)],
        prop_oneof![
            3 => Just(None),
            1 => any::<u32>().prop_map(Some),
        ],
    )
        .prop_map(|(flags, garbage, version, size)| {
            let mut body = Vec::new();
            body.extend(version);
            body.extend_from_slice(&garbage);
            let size = size.map_or(body.len() as u32, |s| s & 0x3FFF_FFFF);
            let mut m = ((flags << 30) | size).to_be_bytes().to_vec();
            m.extend_from_slice(&body);
            m
        })
}

/// Decoding never panics, and whatever decodes re-encodes to a blob that decodes to the same
/// track (so echoing a client's track back is stable).
fn check_decode(encoded: &str, kind: u8) -> Result<(), TestCaseError> {
    let layout = layout_for(kind);
    let result = decode_track(encoded, &layout);
    if let Ok(d) = result {
        let again = decode_track(&encode_track(&d.info, &d.details), &layout)
            .map_err(|e| TestCaseError::fail(format!("re-encoded track fails: {e}")))?;
        prop_assert_eq!(again.info, d.info);
        prop_assert_eq!(again.details, d.details);
        prop_assert_eq!(again.version, 3);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_track_arbitrary_strings(s in any::<String>(), kind in any::<u8>()) {
        check_decode(&s, kind)?;
    }

    #[test]
    fn decode_track_base64_of_arbitrary_bytes(
        bytes in vec(any::<u8>(), 0..400),
        padded in any::<bool>(),
        kind in any::<u8>(),
    ) {
        let encoded = if padded { STANDARD.encode(&bytes) } else { STANDARD_NO_PAD.encode(&bytes) };
        check_decode(&encoded, kind)?;
        // The raw-message entry point must agree with the base64 one.
        let layout = layout_for(kind);
        prop_assert_eq!(decode_message(&bytes, &layout), decode_track(&encoded, &layout));
    }

    #[test]
    fn decode_track_valid_header_garbage_body(msg in header_with_garbage_body(), kind in any::<u8>()) {
        check_decode(&STANDARD.encode(&msg), kind)?;
    }

    #[test]
    fn decode_track_mutated_valid_tracks(
        title in "[a-zA-Z0-9 \u{0}é€😀]{0,24}",
        probe in proptest::option::of("[a-z0-9|-]{0,12}"),
        edits in vec(edit(), 1..4),
        kind in any::<u8>(),
    ) {
        let (info, details) = sample_track(title, probe);
        let mut bytes = STANDARD.decode(encode_track(&info, &details)).unwrap();
        apply(&mut bytes, &edits);
        check_decode(&STANDARD.encode(&bytes), kind)?;
    }

    #[test]
    fn decode_track_declared_size_past_the_data_is_truncated(
        title in "[a-z]{0,16}",
        extra in 1u32..1_000_000,
    ) {
        let (info, details) = sample_track(title, Some("mp3".into()));
        let mut bytes = STANDARD.decode(encode_track(&info, &details)).unwrap();
        let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) + extra;
        bytes[..4].copy_from_slice(&size.to_be_bytes());
        prop_assert_eq!(
            decode_track(&STANDARD.encode(&bytes), layout_for(1)),
            Err(TrackDecodeError::Truncated)
        );
    }
}

// ---------------------------------------------------------------- JSON bodies

/// Every key the request bodies know, so that generated objects reach the nested parsers.
const KEYS: &[&str] = &[
    "track",
    "encoded",
    "identifier",
    "userData",
    "encodedTrack",
    "position",
    "endTime",
    "volume",
    "paused",
    "filters",
    "voice",
    "token",
    "endpoint",
    "sessionId",
    "channelId",
    "resuming",
    "timeout",
    "equalizer",
    "band",
    "gain",
    "karaoke",
    "level",
    "monoLevel",
    "filterBand",
    "filterWidth",
    "timescale",
    "speed",
    "pitch",
    "rate",
    "tremolo",
    "frequency",
    "depth",
    "vibrato",
    "rotation",
    "rotationHz",
    "distortion",
    "sinOffset",
    "sinScale",
    "cosOffset",
    "cosScale",
    "tanOffset",
    "tanScale",
    "offset",
    "scale",
    "channelMix",
    "leftToLeft",
    "leftToRight",
    "rightToLeft",
    "rightToRight",
    "lowPass",
    "smoothing",
    "pluginFilters",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => ".{0,8}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-20i64..20).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (-10.0f64..10.0).prop_map(Value::from),
        prop_oneof![
            Just(1e39),
            Just(-1e39),
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE),
            Just(-0.0),
            Just(4_294_967_296.0),
            Just(9.223_372_036_854_776e18),
        ]
        .prop_map(Value::from),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number(),
        2 => prop_oneof![".{0,12}", "QAAA[A-Za-z0-9+/=]{0,20}"].prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            1 => vec(inner.clone(), 0..6).prop_map(Value::Array),
            3 => btree_map(key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Equal JSON, except that numbers may differ in the last bits: serde_json, as this crate
/// configures it (without its `float_roundtrip` feature), may read a long decimal one unit in the
/// last place away from the nearest `f64`.
fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_close(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_close(a, b)))
        }
        _ => a == b,
    }
}

/// A validated filter set is echoed as JSON; that JSON must parse back to the same filters
/// (`pluginFilters` is accepted but never echoed).
fn check_filters_echo(f: &Filters) -> Result<(), TestCaseError> {
    if f.validate().is_err() {
        return Ok(());
    }
    // What the client receives is text.
    let echoed = serde_json::to_string(f).unwrap();
    let back: Filters = serde_json::from_str(&echoed)
        .map_err(|e| TestCaseError::fail(format!("echo {echoed} does not parse: {e}")))?;
    prop_assert!(back.plugin_filters.is_empty());
    let (sent, received) = (
        serde_json::to_value(f).unwrap(),
        serde_json::to_value(&back).unwrap(),
    );
    prop_assert!(
        json_close(&sent, &received),
        "filters {} were echoed as {}, which reads back as {}",
        sent,
        echoed,
        received
    );
    Ok(())
}

/// Parses `bytes` as every body type; never panics.
fn parse_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(u) = serde_json::from_slice::<UpdatePlayer>(bytes)
        && let Some(f) = &u.filters
    {
        check_filters_echo(f)?;
    }
    let _ = serde_json::from_slice::<UpdateSession>(bytes);
    if let Ok(f) = serde_json::from_slice::<Filters>(bytes) {
        check_filters_echo(&f)?;
    }
    let _ = serde_json::from_slice::<Vec<String>>(bytes);
    Ok(())
}

/// Valid bodies that mutations start from.
const SEEDS: &[&str] = &[
    r#"{"track":{"encoded":"QAAAjQIAJVJpY2sgQXN0bGV5","userData":{"a":1}},"position":30000,"endTime":null,"volume":50,"paused":false}"#,
    r#"{"track":{"identifier":"https://example.com/a.mp3"},"voice":{"token":"t","endpoint":"e","sessionId":"s","channelId":"1"}}"#,
    r#"{"encodedTrack":null,"identifier":"x","filters":{"volume":1.0,"equalizer":[{"band":0,"gain":0.2}],"timescale":{"speed":1.2}}}"#,
    r#"{"karaoke":{"level":1.0},"tremolo":{"frequency":2.0,"depth":0.5},"vibrato":{"frequency":14,"depth":1},"rotation":{"rotationHz":0.2},"distortion":{"scale":2},"channelMix":{"leftToRight":0.5},"lowPass":{"smoothing":20.0},"pluginFilters":{"echo":{"delay":1}}}"#,
    r#"{"resuming":true,"timeout":60}"#,
    r#"["QAAAjQIAJVJpY2sgQXN0bGV5","QAAA2QMAPFJpY2sg"]"#,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn json_bodies_from_arbitrary_values(v in json()) {
        // Straight from the value, as an extractor holding a `Value` would...
        if let Ok(f) = serde_json::from_value::<Filters>(v.clone()) {
            check_filters_echo(&f)?;
        }
        if let Ok(u) = serde_json::from_value::<UpdatePlayer>(v.clone())
            && let Some(f) = &u.filters
        {
            check_filters_echo(f)?;
        }
        let _ = serde_json::from_value::<UpdateSession>(v.clone());
        let _ = serde_json::from_value::<Vec<String>>(v.clone());
        // ...and from its bytes, as the HTTP body arrives.
        parse_all(&serde_json::to_vec(&v).unwrap())?;
    }

    #[test]
    fn json_bodies_wrapped_in_the_field_that_holds_them(v in json()) {
        // Put the value where each nested parser looks for it.
        for field in ["filters", "track", "voice", "equalizer", "timescale", "karaoke", "lowPass"] {
            let body = serde_json::json!({ field: v.clone() });
            parse_all(&serde_json::to_vec(&body).unwrap())?;
        }
        let filters = serde_json::json!({ "filters": { "equalizer": [v.clone()], "distortion": v } });
        parse_all(&serde_json::to_vec(&filters).unwrap())?;
    }

    #[test]
    fn json_bodies_from_arbitrary_bytes(bytes in vec(any::<u8>(), 0..256)) {
        parse_all(&bytes)?;
    }

    #[test]
    fn json_bodies_from_mutated_valid_bodies(
        seed in proptest::sample::select(SEEDS),
        edits in vec(edit(), 1..5),
    ) {
        let mut bytes = seed.as_bytes().to_vec();
        apply(&mut bytes, &edits);
        parse_all(&bytes)?;
    }
}

#[test]
fn seeds_parse_as_intended() {
    // The mutation seeds must be valid, or the mutation test would only exercise error paths.
    let u: UpdatePlayer = serde_json::from_str(SEEDS[0]).unwrap();
    assert_eq!(u.position, Some(30000));
    let u: UpdatePlayer = serde_json::from_str(SEEDS[1]).unwrap();
    assert!(u.voice.unwrap().is_complete());
    let u: UpdatePlayer = serde_json::from_str(SEEDS[2]).unwrap();
    u.filters.unwrap().validate().unwrap();
    let f: Filters = serde_json::from_str(SEEDS[3]).unwrap();
    f.validate().unwrap();
    let s: UpdateSession = serde_json::from_str(SEEDS[4]).unwrap();
    assert_eq!(s.timeout, Some(60));
    let v: Vec<String> = serde_json::from_str(SEEDS[5]).unwrap();
    assert_eq!(v.len(), 2);
}
