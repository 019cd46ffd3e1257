//! `/v4/loadtracks`, `/v4/decodetrack` and `/v4/decodetracks` (spec §3.4–3.6).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};

use super::{ApiError, AppState};
use crate::protocol::load::{LoadResult, Playlist, PlaylistInfo};
use crate::protocol::track::Track;
use crate::sources::LoadedItem;
use crate::track::{decode_for_client, to_track};

/// Turns a source's answer into the client-facing load result.
pub fn load_result(item: LoadedItem) -> LoadResult {
    let track = |d: &crate::sources::TrackData| to_track(d, d.info.position, Default::default());
    match item {
        LoadedItem::Track(d) => LoadResult::Track(track(&d)),
        LoadedItem::Playlist {
            name,
            selected_track,
            tracks,
        } => LoadResult::Playlist(Playlist {
            info: PlaylistInfo {
                name,
                selected_track,
            },
            plugin_info: Default::default(),
            tracks: tracks.iter().map(track).collect(),
        }),
        LoadedItem::Search(tracks) => LoadResult::Search(tracks.iter().map(track).collect()),
        LoadedItem::Empty => LoadResult::empty(),
        LoadedItem::Error(e) => LoadResult::Error(e),
    }
}

pub async fn load_tracks(
    State(node): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<LoadResult>, ApiError> {
    let identifier = q
        .get("identifier")
        .ok_or_else(|| ApiError::bad_request("No identifier provided"))?;
    let started = std::time::Instant::now();
    let item = node.players.sources.load(identifier).await;
    let result = load_result(item);
    let (load_type, source) = match &result {
        LoadResult::Track(t) => ("track", Some(t.info.source_name.clone())),
        LoadResult::Playlist(_) => ("playlist", None),
        LoadResult::Search(_) => ("search", None),
        LoadResult::Empty(()) => ("empty", None),
        LoadResult::Error(_) => ("error", Some(error_source(identifier))),
    };
    node.players
        .metrics
        .record_load(started.elapsed(), load_type, source.as_deref());
    Ok(Json(result))
}

const DECODE_FAILED: &str =
    "Failed to decode track due to a mismatching version or missing source manager";

fn decode_one(node: &AppState, encoded: &str) -> Result<Track, ApiError> {
    decode_for_client(&node.players.sources, encoded).map_err(|e| {
        ApiError::bad_request(format!("{DECODE_FAILED}: {e}")).with_detail(e.to_string())
    })
}

pub async fn decode_track(
    State(node): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Track>, ApiError> {
    let encoded = q
        .get("encodedTrack")
        .or_else(|| q.get("track"))
        .ok_or_else(|| ApiError::bad_request("No track to decode provided"))?;
    Ok(Json(decode_one(&node, encoded)?))
}

pub async fn decode_tracks(
    State(node): State<AppState>,
    body: Bytes,
) -> Result<Json<Vec<Track>>, ApiError> {
    let list: Vec<String> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
    if list.is_empty() {
        return Err(ApiError::bad_request("No tracks to decode provided"));
    }
    list.iter()
        .map(|e| decode_one(&node, e))
        .collect::<Result<Vec<_>, _>>()
        .map(Json)
}

/// The source an identifier that failed to load belongs to, for the error metrics.
fn error_source(identifier: &str) -> String {
    let lower = identifier.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("icy://")
    {
        "http".into()
    } else if let Some((prefix, _)) = lower.split_once(':') {
        prefix.to_string()
    } else {
        "local".into()
    }
}
