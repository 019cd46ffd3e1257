//! Player routes: list, get, update-or-create (the PATCH of spec §3.9, with its validation order
//! and processing order), and destroy.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::sessions::{open_session, parse_body};
use super::{ApiError, AppState};
use crate::player::{Player, PlayerError};
use crate::protocol::Omissible;
use crate::protocol::filters::BUILTIN_FILTERS;
use crate::protocol::player::{Player as PlayerJson, UpdatePlayer};
use crate::sources::LoadedItem;

fn guild_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|g| *g >= 0)
        .map(|g| g as u64)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid guild id: {text}")))
}

fn player_error(e: PlayerError) -> ApiError {
    match e {
        PlayerError::Destroyed => ApiError::not_found("Player not found"),
    }
}

pub async fn list(
    State(node): State<AppState>,
    Path(session_id): Path<String>,
) -> Result<Json<Vec<PlayerJson>>, ApiError> {
    let session = open_session(&node, &session_id)?;
    let mut out = Vec::new();
    for p in session.players() {
        out.push(p.snapshot().await);
    }
    Ok(Json(out))
}

pub async fn get(
    State(node): State<AppState>,
    Path((session_id, guild)): Path<(String, String)>,
) -> Result<Json<PlayerJson>, ApiError> {
    let session = open_session(&node, &session_id)?;
    let guild = guild_id(&guild)?;
    let player = session
        .player(guild)
        .ok_or_else(|| ApiError::not_found("Player not found"))?;
    Ok(Json(player.snapshot().await))
}

pub async fn destroy(
    State(node): State<AppState>,
    Path((session_id, guild)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let session = open_session(&node, &session_id)?;
    let guild = guild_id(&guild)?;
    if let Some(player) = session.remove_player(guild) {
        player.destroy().await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Spring's boolean query values.
fn parse_bool_param(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "Invalid value for {name}: {v}"
        ))),
    }
}

/// Filters named in the request that the config disables: built-in keys present (even `null`)
/// and every `pluginFilters` key (we have no plugins, so none is enabled).
fn disabled_filters(node: &AppState, raw: &Value) -> Vec<String> {
    let Some(filters) = raw.get("filters").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in BUILTIN_FILTERS {
        if filters.contains_key(name) && !node.config.filter_enabled(name) {
            out.push(name.to_string());
        }
    }
    if let Some(plugins) = filters.get("pluginFilters").and_then(Value::as_object) {
        for name in plugins.keys() {
            if node.config.filters.get(name.as_str()) == Some(&false) {
                out.push(name.clone());
            }
        }
    }
    out
}

pub async fn update(
    State(node): State<AppState>,
    Path((session_id, guild)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<PlayerJson>, ApiError> {
    let session = open_session(&node, &session_id)?;
    let guild = guild_id(&guild)?;
    let no_replace = match query.get("noReplace") {
        Some(v) => parse_bool_param("noReplace", v)?,
        None => false,
    };
    let raw: Value = parse_body(&body)?;
    if !raw.is_object() {
        return Err(ApiError::bad_request(
            "Invalid request body: expected a JSON object",
        ));
    }
    let req: UpdatePlayer = parse_body(&body)?;

    // Validation, in the reference's order; nothing has happened yet.
    if req.track.is_some() && (req.encoded_track.is_given() || req.identifier.is_some()) {
        return Err(ApiError::bad_request(
            "Cannot specify both track and encodedTrack/identifier",
        ));
    }
    let (encoded, identifier, user_data) = match req.track {
        Some(t) => (t.encoded, t.identifier, t.user_data),
        None => (req.encoded_track, req.identifier, None),
    };
    if encoded.is_given() && identifier.is_some() {
        return Err(ApiError::bad_request(
            "Cannot specify both encodedTrack and identifier",
        ));
    }
    let disabled = disabled_filters(&node, &raw);
    if !disabled.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Following filters are disabled in the config: {}",
            disabled.join(", ")
        )));
    }
    if let Some(filters) = &req.filters {
        filters.validate().map_err(ApiError::bad_request)?;
    }
    if let Some(voice) = &req.voice
        && !voice.is_complete()
    {
        return Err(ApiError::bad_request(
            "token, endpoint, sessionId and channelId must be provided in voice state",
        ));
    }
    if let Some(end) = req.end_time.value()
        && *end <= 0
    {
        return Err(ApiError::bad_request("End time must be greater than 0"));
    }
    if let Some(pos) = req.position
        && pos < 0
    {
        return Err(ApiError::bad_request("Position must be at least 0"));
    }

    // Processing, in the reference's order.
    let player = session.player_or_insert_with(guild, || {
        Player::new(
            guild,
            session.user_id,
            node.players.clone(),
            session.outbox.clone(),
        )
    });
    let new_track = encoded.is_given() || identifier.is_some();

    if let Some(voice) = req.voice {
        player.set_voice(voice).await.map_err(player_error)?;
    }
    if !new_track {
        if let Some(paused) = req.paused {
            player.set_paused(paused).await;
        }
        if let Some(user_data) = user_data.clone() {
            player.set_user_data(user_data).await;
        }
    }
    if let Some(volume) = req.volume {
        player.set_volume(volume.clamp(0, 1000) as i32).await;
    }
    if !new_track {
        if let Some(position) = req.position {
            player.seek(position).await;
        }
        match req.end_time {
            Omissible::Present(end) => player.set_end_time(Some(end)).await,
            Omissible::Null => player.set_end_time(None).await,
            Omissible::Absent => {}
        }
    }
    if let Some(filters) = req.filters {
        player.set_filters(filters).await;
    }
    if new_track {
        start_track(
            &node,
            &player,
            no_replace,
            encoded,
            identifier,
            &req.position,
            &req.end_time,
            user_data,
            req.paused,
        )
        .await?;
    }
    Ok(Json(player.snapshot().await))
}

#[allow(clippy::too_many_arguments)]
async fn start_track(
    node: &AppState,
    player: &Arc<Player>,
    no_replace: bool,
    encoded: Omissible<String>,
    identifier: Option<String>,
    position: &Option<i64>,
    end_time: &Omissible<i64>,
    user_data: Option<serde_json::Map<String, Value>>,
    paused: Option<bool>,
) -> Result<(), ApiError> {
    if no_replace && player.is_track_loaded().await {
        return Ok(());
    }
    let paused = paused.unwrap_or(false);
    let data = match (encoded, identifier) {
        (Omissible::Null, _) => {
            player.stop(paused).await;
            return Ok(());
        }
        (Omissible::Present(encoded), _) => crate::track::decode(&node.players.sources, &encoded)
            .map_err(|e| {
            ApiError::bad_request(format!(
                "Failed to decode track due to a mismatching version or missing source manager: {e}"
            ))
        })?,
        (Omissible::Absent, Some(identifier)) => match node.players.sources.load(&identifier).await
        {
            LoadedItem::Track(data) => data,
            LoadedItem::Playlist { .. } | LoadedItem::Search(_) => {
                return Err(ApiError::bad_request(
                    "Cannot play a playlist or search result",
                ));
            }
            LoadedItem::Empty => {
                return Err(ApiError::bad_request("No matches found for identifier"));
            }
            LoadedItem::Error(e) => {
                return Err(ApiError::bad_request(e.message.clone().unwrap_or_else(
                    || "Something went wrong while looking up the track.".into(),
                )));
            }
        },
        (Omissible::Absent, None) => return Ok(()),
    };
    player
        .play(
            data,
            *position,
            end_time.value().copied(),
            user_data,
            paused,
        )
        .await
        .map_err(player_error)
}
