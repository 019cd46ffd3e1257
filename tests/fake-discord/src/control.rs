//! The control protocol of the `fake-discord` binary: one JSON object per line in, one per
//! line out, mirroring the `FakeDiscord` API for tools that run the server as a process.
//!
//! Request: `{"id": any, "cmd": "<name>", ...arguments}`. Reply: `{"id": <same>, "ok": true,
//! "result": ...}` or `{"id": <same>, "ok": false, "error": "..."}`. Guild and user ids are
//! JSON numbers. Commands:
//!
//! | cmd | arguments | result |
//! |---|---|---|
//! | `info` | | `{endpoint, gateway_port, udp_port, ca_pem}` |
//! | `register_session` | `guild_id, user_id, channel_id` | `{token, session_id, endpoint}` |
//! | `wait_connected` | `guild_id, timeout_ms` | `true`/`false` |
//! | `wait_packets` | `guild_id, count, timeout_ms` | `true`/`false` |
//! | `wait_dave_ready` | `guild_id, timeout_ms` | `true`/`false` |
//! | `report` | `guild_id`, `media` (bool), `pcm_file` (path: raw s16le stereo 48 kHz), `window_s` (tone analysis per window) | the stream report, plus `analysis` when `window_s` is given |
//! | `reports` | `guild_id` | every stream of the guild, without media |
//! | `close` | `guild_id, code, reason` | `true` if a connection was attached |
//! | `drop` | `guild_id` | same |
//! | `send` | `guild_id, op, d, sequenced` | `null` |
//! | `dave_status` | `guild_id` | DAVE state or `null` |
//! | `dave_add_listener` | `guild_id` | the listener's user id |
//! | `dave_remove_listener` | `guild_id, user_id` | `null` |
//! | `dave_reset_epoch`, `dave_downgrade`, `dave_sole_member`, `dave_invalid_commit` | `guild_id` | `null` |
//! | `behaviour` | | the current behaviour |
//! | `set_behaviour` | `behaviour`: an object with the fields to change | the new behaviour |
//! | `reset_stats`, `clear_events` | | `null` |
//! | `events` | `since` (index, optional) | the events from that index on |
//! | `counters` | | server counters |
//! | `shutdown` | | `null`, then the process exits |

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Behaviour, FakeDiscord, audio};

fn u64_arg(req: &Value, name: &str) -> Result<u64, String> {
    req.get(name)
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .ok_or_else(|| format!("missing or invalid `{name}`"))
}

fn timeout_arg(req: &Value) -> Duration {
    Duration::from_millis(
        req.get("timeout_ms")
            .and_then(Value::as_u64)
            .unwrap_or(5000),
    )
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

/// Runs one command. `Ok(None)` means "shut down".
pub async fn execute(fake: &FakeDiscord, req: &Value) -> Result<Option<Value>, String> {
    let cmd = req
        .get("cmd")
        .and_then(Value::as_str)
        .ok_or("missing `cmd`")?;
    let e = |e: crate::Error| e.0;
    let result = match cmd {
        "info" => json!({
            "endpoint": fake.endpoint(),
            "gateway_port": fake.gateway_addr().port(),
            "udp_port": fake.udp_addr().port(),
            "ca_pem": fake.ca_cert_pem(),
        }),
        "register_session" => {
            let (token, session_id) = fake.register_session(
                u64_arg(req, "guild_id")?,
                u64_arg(req, "user_id")?,
                u64_arg(req, "channel_id")?,
            );
            json!({ "token": token, "session_id": session_id, "endpoint": fake.endpoint() })
        }
        "wait_connected" => json!(
            fake.wait_connected(u64_arg(req, "guild_id")?, timeout_arg(req))
                .await
        ),
        "wait_packets" => json!(
            fake.wait_packets(
                u64_arg(req, "guild_id")?,
                u64_arg(req, "count")?,
                timeout_arg(req)
            )
            .await
        ),
        "wait_dave_ready" => json!(
            fake.wait_dave_ready(u64_arg(req, "guild_id")?, timeout_arg(req))
                .await
        ),
        "report" => {
            let guild = u64_arg(req, "guild_id")?;
            let report = fake
                .stream_report(guild)
                .ok_or("no stream for this guild")?;
            if let Some(path) = req.get("pcm_file").and_then(Value::as_str) {
                let bytes: Vec<u8> = report.pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
                std::fs::write(path, bytes).map_err(|e| format!("write {path}: {e}"))?;
            }
            let analysis = req
                .get("window_s")
                .and_then(Value::as_f64)
                .map(|w| audio::analyze(&report.pcm, w));
            let with_media = req.get("media").and_then(Value::as_bool).unwrap_or(false);
            let report = if with_media {
                report
            } else {
                report.without_media()
            };
            let mut v = to_value(report)?;
            if let Some(a) = analysis {
                v["analysis"] = to_value(a)?;
            }
            v
        }
        "reports" => to_value(fake.stream_reports(u64_arg(req, "guild_id")?, false))?,
        "close" => {
            let code = u64_arg(req, "code")? as u16;
            let reason = req.get("reason").and_then(Value::as_str).unwrap_or("");
            json!(fake.close(u64_arg(req, "guild_id")?, code, reason))
        }
        "drop" => json!(fake.drop_connection(u64_arg(req, "guild_id")?)),
        "send" => {
            let op = u64_arg(req, "op")? as u8;
            let d = req.get("d").cloned().unwrap_or(Value::Null);
            let sequenced = req
                .get("sequenced")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            fake.send_json(u64_arg(req, "guild_id")?, op, d, sequenced)
                .map_err(e)?;
            Value::Null
        }
        "dave_status" => to_value(fake.dave_status(u64_arg(req, "guild_id")?))?,
        "dave_add_listener" => json!(
            fake.dave_add_listener(u64_arg(req, "guild_id")?)
                .map_err(e)?
        ),
        "dave_remove_listener" => {
            fake.dave_remove_listener(u64_arg(req, "guild_id")?, u64_arg(req, "user_id")?)
                .map_err(e)?;
            Value::Null
        }
        "dave_reset_epoch" => to_value(
            fake.dave_reset_epoch(u64_arg(req, "guild_id")?)
                .map_err(e)?,
        )?,
        "dave_downgrade" => to_value(fake.dave_downgrade(u64_arg(req, "guild_id")?).map_err(e)?)?,
        "dave_sole_member" => to_value(
            fake.dave_sole_member(u64_arg(req, "guild_id")?)
                .map_err(e)?,
        )?,
        "dave_invalid_commit" => to_value(
            fake.dave_invalid_commit(u64_arg(req, "guild_id")?)
                .map_err(e)?,
        )?,
        "behaviour" => to_value(fake.behaviour())?,
        "set_behaviour" => {
            let changes = req.get("behaviour").cloned().unwrap_or(Value::Null);
            let Value::Object(changes) = changes else {
                return Err("`behaviour` must be an object".into());
            };
            let mut current = to_value(fake.behaviour())?;
            for (k, v) in changes {
                if current.get(&k).is_none() {
                    return Err(format!("unknown behaviour field `{k}`"));
                }
                current[&k] = v;
            }
            let new: Behaviour = serde_json::from_value(current).map_err(|e| e.to_string())?;
            fake.set_behaviour(|b| *b = new.clone());
            to_value(new)?
        }
        "reset_stats" => {
            fake.reset_stats();
            Value::Null
        }
        "clear_events" => {
            fake.clear_events();
            Value::Null
        }
        "events" => {
            let since = req.get("since").and_then(Value::as_u64).unwrap_or(0) as usize;
            let events = fake.events();
            to_value(events.get(since..).unwrap_or(&[]))?
        }
        "counters" => to_value(fake.counters())?,
        "shutdown" => return Ok(None),
        other => return Err(format!("unknown cmd `{other}`")),
    };
    Ok(Some(result))
}

/// Serves the control protocol until the input ends or `shutdown` is received.
pub async fn serve<R: AsyncBufRead + Unpin, W: AsyncWrite + Unpin>(
    fake: &FakeDiscord,
    input: R,
    mut output: W,
) -> std::io::Result<()> {
    let mut lines = input.lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let (id, reply, stop) = match serde_json::from_str::<Value>(&line) {
            Err(err) => (
                Value::Null,
                Err(format!("request is not JSON: {err}")),
                false,
            ),
            Ok(req) => {
                let id = req.get("id").cloned().unwrap_or(Value::Null);
                match execute(fake, &req).await {
                    Ok(Some(v)) => (id, Ok(v), false),
                    Ok(None) => (id, Ok(Value::Null), true),
                    Err(e) => (id, Err(e), false),
                }
            }
        };
        let out = match reply {
            Ok(result) => json!({ "id": id, "ok": true, "result": result }),
            Err(error) => json!({ "id": id, "ok": false, "error": error }),
        };
        output.write_all(format!("{out}\n").as_bytes()).await?;
        output.flush().await?;
        if stop {
            break;
        }
    }
    Ok(())
}
