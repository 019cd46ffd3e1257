//! Configuration: Lavalink's own `application.yml` keys, Spring-style environment overrides,
//! and a few keys of our own under `acoustic.*`.
//!
//! The YAML tree is flattened into dotted keys (`lavalink.server.password`). Each setting is read
//! by key with its default; reading a key also makes it "known", so after reading everything the
//! keys left over are reported as unknown (a warning, never fatal). An environment variable named
//! by Spring's relaxed-binding rule (`lavalink.server.playerUpdateInterval` →
//! `LAVALINK_SERVER_PLAYERUPDATEINTERVAL`; list items as `…_0`, `…_1`) overrides the file.
//! A value of the wrong form stops start-up with a message naming the key and the expected form.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("invalid value for `{key}`: expected {expected}, got `{got}`")]
    Invalid {
        key: String,
        expected: String,
        got: String,
    },
    #[error("`{0}` is required")]
    Missing(String),
}

/// How the resampler trades CPU for quality (Lavalink's `resamplingQuality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResamplingQuality {
    Low,
    Medium,
    High,
}

/// The route planner strategy names of `lavalink.server.ratelimit.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutePlannerStrategy {
    RotateOnBan,
    LoadBalance,
    NanoSwitch,
    RotatingNanoSwitch,
}

/// `lavalink.server.sources.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceToggles {
    pub youtube: bool,
    pub bandcamp: bool,
    pub soundcloud: bool,
    pub twitch: bool,
    pub vimeo: bool,
    pub nico: bool,
    pub http: bool,
    pub local: bool,
}

/// `lavalink.server.ratelimit.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub ip_blocks: Vec<String>,
    pub excluded_ips: Vec<String>,
    pub strategy: RoutePlannerStrategy,
    pub search_triggers_fail: bool,
    pub retry_limit: i64,
}

/// `lavalink.server.httpConfig.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProxyConfig {
    pub proxy_host: String,
    pub proxy_port: u16,
    pub proxy_user: String,
    pub proxy_password: String,
}

/// `logging.request.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogging {
    pub enabled: bool,
    pub include_client_info: bool,
    pub include_headers: bool,
    pub include_query_string: bool,
    pub include_payload: bool,
    pub max_payload_length: usize,
}

/// Everything the node reads from its configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub address: IpAddr,
    pub http2: bool,
    pub password: String,
    pub sources: SourceToggles,
    /// Enabled state of each built-in filter, by name.
    pub filters: BTreeMap<String, bool>,
    pub non_allocating_frame_buffer: bool,
    pub buffer_duration_ms: i64,
    pub frame_buffer_duration_ms: u32,
    pub opus_encoding_quality: u8,
    pub resampling_quality: ResamplingQuality,
    pub track_stuck_threshold_ms: u64,
    pub use_seek_ghosting: bool,
    pub youtube_playlist_load_limit: u32,
    pub player_update_interval_secs: u64,
    pub youtube_search_enabled: bool,
    pub soundcloud_search_enabled: bool,
    pub soundcloud_filter_out_preview_tracks: bool,
    pub ratelimit: RateLimitConfig,
    pub http_proxy: HttpProxyConfig,
    pub connect_timeout_ms: u64,
    pub connection_request_timeout_ms: u64,
    pub socket_timeout_ms: u64,
    pub metrics_enabled: bool,
    pub metrics_endpoint: String,
    /// `logging.level.<logger>` → level name.
    pub log_levels: BTreeMap<String, String>,
    pub request_logging: RequestLogging,
    // Our own settings.
    /// Directories the `local` source may read from.
    pub local_directories: Vec<PathBuf>,
    /// Audio worker threads; 0 = one per core.
    pub audio_workers: usize,
    /// Bound on compressed read-ahead per HTTP stream.
    pub read_ahead_bytes: usize,
    /// Voice handshakes allowed to run at once.
    pub voice_handshake_limit: usize,
    /// `acoustic.sources.ytdlp.python`: an interpreter that can import `yt_dlp` (then nothing
    /// else is tried); `None` = search `PATH`.
    pub ytdlp_python: Option<PathBuf>,
    /// `acoustic.sources.ytdlp.executable`: a `yt-dlp` script or zipapp whose interpreter is used.
    pub ytdlp_executable: Option<PathBuf>,
    /// Keys present in the file (or environment) that nothing reads.
    pub unknown_keys: Vec<String>,
}

/// Built-in filter names (`lavalink.server.filters.<name>`).
pub use crate::protocol::filters::BUILTIN_FILTERS;

/// Prefixes whose subkeys are free-form (never reported as unknown).
const FREE_FORM: &[&str] = &[
    "plugins.",
    "lavalink.plugins",
    "lavalink.pluginsDir",
    "lavalink.defaultPluginRepository",
    "lavalink.defaultPluginSnapshotRepository",
    "logging.level.",
    "logging.file.",
    "logging.logback.",
    "spring.",
    "sentry.",
    "lavalink.server.youtubeConfig.",
    "lavalink.server.gc-warnings",
    "lavalink.server.gcWarnings",
    "management.",
];

impl Config {
    /// Loads from a YAML file (if it exists) and the process environment.
    /// `explicit` is true when the path came from `--config` (then a missing file is an error).
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Config::from_yaml_and_env(&text, &env).map_err(|e| match e {
            ConfigError::Yaml { source, .. } => ConfigError::Yaml {
                path: path.into(),
                source,
            },
            e => e,
        })
    }

    /// Builds a configuration from YAML text and an environment map.
    pub fn from_yaml_and_env(
        text: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let root: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Yaml {
                path: PathBuf::new(),
                source,
            })?
        };
        let mut flat = BTreeMap::new();
        flatten("", &root, &mut flat);
        let mut r = Reader {
            flat,
            env,
            read: BTreeSet::new(),
        };

        let mut filters = BTreeMap::new();
        for name in BUILTIN_FILTERS {
            filters.insert(
                name.to_string(),
                r.bool(&format!("lavalink.server.filters.{name}"), true)?,
            );
        }

        let strategy = match r
            .string("lavalink.server.ratelimit.strategy", "RotateOnBan")?
            .to_ascii_lowercase()
            .as_str()
        {
            "rotateonban" => RoutePlannerStrategy::RotateOnBan,
            "loadbalance" => RoutePlannerStrategy::LoadBalance,
            "nanoswitch" => RoutePlannerStrategy::NanoSwitch,
            "rotatingnanoswitch" => RoutePlannerStrategy::RotatingNanoSwitch,
            other => {
                return Err(ConfigError::Invalid {
                    key: "lavalink.server.ratelimit.strategy".into(),
                    expected: "one of RotateOnBan, LoadBalance, NanoSwitch, RotatingNanoSwitch"
                        .into(),
                    got: other.into(),
                });
            }
        };

        let resampling_quality = match r
            .string("lavalink.server.resamplingQuality", "LOW")?
            .to_ascii_uppercase()
            .as_str()
        {
            "LOW" => ResamplingQuality::Low,
            "MEDIUM" => ResamplingQuality::Medium,
            "HIGH" => ResamplingQuality::High,
            other => {
                return Err(ConfigError::Invalid {
                    key: "lavalink.server.resamplingQuality".into(),
                    expected: "LOW, MEDIUM or HIGH".into(),
                    got: other.into(),
                });
            }
        };

        let address_text = r.string("server.address", "0.0.0.0")?;
        let address: IpAddr = address_text.parse().map_err(|_| ConfigError::Invalid {
            key: "server.address".into(),
            expected: "an IP address such as 0.0.0.0 or 127.0.0.1".into(),
            got: address_text.clone(),
        })?;

        let password = r.string("lavalink.server.password", "")?;
        if password.is_empty() {
            return Err(ConfigError::Missing("lavalink.server.password".into()));
        }

        let frame_buffer_duration_ms = r.int("lavalink.server.frameBufferDurationMs", 5000)?;
        let opus_quality = r.int("lavalink.server.opusEncodingQuality", 10)?;
        let stuck = r.int("lavalink.server.trackStuckThresholdMs", 10000)?;
        let update_interval = r.int("lavalink.server.playerUpdateInterval", 5)?;
        if update_interval < 1 {
            return Err(ConfigError::Invalid {
                key: "lavalink.server.playerUpdateInterval".into(),
                expected: "a whole number of seconds ≥ 1".into(),
                got: update_interval.to_string(),
            });
        }
        let port = r.int("server.port", 2333)?;
        if !(0..=65535).contains(&port) {
            return Err(ConfigError::Invalid {
                key: "server.port".into(),
                expected: "a port number 0..65535".into(),
                got: port.to_string(),
            });
        }
        let proxy_port = r.int("lavalink.server.httpConfig.proxyPort", 3128)?;
        let workers = r.int("acoustic.audio.workers", 0)?;
        let read_ahead = r.int("acoustic.audio.readAheadBytes", 1024 * 1024)?;
        let handshakes = r.int("acoustic.voice.handshakeConcurrency", 32)?;
        for (key, v) in [
            ("acoustic.audio.workers", workers),
            ("acoustic.audio.readAheadBytes", read_ahead),
            ("lavalink.server.httpConfig.proxyPort", proxy_port),
        ] {
            if v < 0 {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    expected: "a number ≥ 0".into(),
                    got: v.to_string(),
                });
            }
        }
        if handshakes < 1 {
            return Err(ConfigError::Invalid {
                key: "acoustic.voice.handshakeConcurrency".into(),
                expected: "a number ≥ 1".into(),
                got: handshakes.to_string(),
            });
        }
        let timeout = |r: &mut Reader, key: &str| -> Result<u64, ConfigError> {
            let v = r.int(key, 3000)?;
            if v < 0 {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    expected: "milliseconds ≥ 0".into(),
                    got: v.to_string(),
                });
            }
            Ok(v as u64)
        };
        let connect_timeout_ms = timeout(&mut r, "lavalink.server.timeouts.connectTimeoutMs")?;
        let connection_request_timeout_ms = timeout(
            &mut r,
            "lavalink.server.timeouts.connectionRequestTimeoutMs",
        )?;
        let socket_timeout_ms = timeout(&mut r, "lavalink.server.timeouts.socketTimeoutMs")?;

        let mut log_levels = BTreeMap::new();
        for (k, _) in r.flat.range("logging.level.".to_string()..) {
            let Some(logger) = k.strip_prefix("logging.level.") else {
                break;
            };
            log_levels.insert(logger.to_string(), String::new());
        }
        for logger in ["root", "lavalink"] {
            log_levels.entry(logger.to_string()).or_default();
        }
        let loggers: Vec<String> = log_levels.keys().cloned().collect();
        for logger in loggers {
            let level = r
                .string(&format!("logging.level.{logger}"), "INFO")?
                .to_ascii_uppercase();
            if !["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"].contains(&level.as_str()) {
                return Err(ConfigError::Invalid {
                    key: format!("logging.level.{logger}"),
                    expected: "TRACE, DEBUG, INFO, WARN, ERROR or OFF".into(),
                    got: level,
                });
            }
            log_levels.insert(logger, level);
        }

        let local_directories = r
            .list("acoustic.sources.local.directories")?
            .into_iter()
            .map(PathBuf::from)
            .collect();

        let mut path_setting = |key: &str| -> Result<Option<PathBuf>, ConfigError> {
            let v = r.string(key, "")?;
            Ok((!v.trim().is_empty()).then(|| PathBuf::from(v.trim())))
        };
        let ytdlp_python = path_setting("acoustic.sources.ytdlp.python")?;
        let ytdlp_executable = path_setting("acoustic.sources.ytdlp.executable")?;

        let config = Config {
            port: port as u16,
            address,
            http2: r.bool("server.http2.enabled", false)?,
            password,
            sources: SourceToggles {
                youtube: r.bool("lavalink.server.sources.youtube", true)?,
                bandcamp: r.bool("lavalink.server.sources.bandcamp", true)?,
                soundcloud: r.bool("lavalink.server.sources.soundcloud", true)?,
                twitch: r.bool("lavalink.server.sources.twitch", true)?,
                vimeo: r.bool("lavalink.server.sources.vimeo", true)?,
                nico: r.bool("lavalink.server.sources.nico", false)?,
                http: r.bool("lavalink.server.sources.http", true)?,
                local: r.bool("lavalink.server.sources.local", false)?,
            },
            filters,
            non_allocating_frame_buffer: r
                .bool("lavalink.server.nonAllocatingFrameBuffer", false)?,
            buffer_duration_ms: r.int("lavalink.server.bufferDurationMs", 400)?,
            frame_buffer_duration_ms: if frame_buffer_duration_ms < 200 {
                5000
            } else {
                frame_buffer_duration_ms.min(u32::MAX as i64) as u32
            },
            opus_encoding_quality: if (0..=10).contains(&opus_quality) {
                opus_quality as u8
            } else {
                10
            },
            resampling_quality,
            track_stuck_threshold_ms: if stuck < 100 { 10000 } else { stuck as u64 },
            use_seek_ghosting: r.bool("lavalink.server.useSeekGhosting", true)?,
            youtube_playlist_load_limit: r
                .int("lavalink.server.youtubePlaylistLoadLimit", 6)?
                .clamp(0, u32::MAX as i64) as u32,
            player_update_interval_secs: update_interval as u64,
            youtube_search_enabled: r.bool("lavalink.server.youtubeSearchEnabled", true)?,
            soundcloud_search_enabled: r.bool("lavalink.server.soundcloudSearchEnabled", true)?,
            soundcloud_filter_out_preview_tracks: r
                .bool("lavalink.server.soundcloudFilterOutPreviewTracks", false)?,
            ratelimit: RateLimitConfig {
                ip_blocks: r.list("lavalink.server.ratelimit.ipBlocks")?,
                excluded_ips: r.list("lavalink.server.ratelimit.excludedIps")?,
                strategy,
                search_triggers_fail: r
                    .bool("lavalink.server.ratelimit.searchTriggersFail", true)?,
                retry_limit: r.int("lavalink.server.ratelimit.retryLimit", -1)?,
            },
            http_proxy: HttpProxyConfig {
                proxy_host: r.string("lavalink.server.httpConfig.proxyHost", "")?,
                proxy_port: proxy_port.min(65535) as u16,
                proxy_user: r.string("lavalink.server.httpConfig.proxyUser", "")?,
                proxy_password: r.string("lavalink.server.httpConfig.proxyPassword", "")?,
            },
            connect_timeout_ms,
            connection_request_timeout_ms,
            socket_timeout_ms,
            metrics_enabled: r.bool("metrics.prometheus.enabled", false)?,
            metrics_endpoint: r.string("metrics.prometheus.endpoint", "/metrics")?,
            log_levels,
            request_logging: RequestLogging {
                enabled: r.bool("logging.request.enabled", true)?,
                include_client_info: r.bool("logging.request.includeClientInfo", false)?,
                include_headers: r.bool("logging.request.includeHeaders", false)?,
                include_query_string: r.bool("logging.request.includeQueryString", true)?,
                include_payload: r.bool("logging.request.includePayload", true)?,
                max_payload_length: r.int("logging.request.maxPayloadLength", 10000)?.max(0)
                    as usize,
            },
            local_directories,
            audio_workers: workers as usize,
            read_ahead_bytes: read_ahead as usize,
            voice_handshake_limit: handshakes as usize,
            ytdlp_python,
            ytdlp_executable,
            unknown_keys: Vec::new(),
        };
        // Keys of other request-logging and youtube options we accept but do not use.
        r.bool("logging.request.beforeRequest", false)?;
        let unknown_keys = r.unknown();
        Ok(Config {
            unknown_keys,
            ..config
        })
    }

    /// Whether a built-in filter is enabled.
    pub fn filter_enabled(&self, name: &str) -> bool {
        self.filters.get(name).copied().unwrap_or(true)
    }
}

/// Reads typed values by dotted key from the flattened file, with environment overrides.
struct Reader<'a> {
    flat: BTreeMap<String, Value>,
    env: &'a BTreeMap<String, String>,
    read: BTreeSet<String>,
}

/// Spring's relaxed binding for environment variables: dots to underscores, dashes dropped,
/// upper case.
fn env_name(key: &str) -> String {
    key.replace('-', "").replace('.', "_").to_ascii_uppercase()
}

impl Reader<'_> {
    /// The raw value for `key`: environment first, then the file.
    fn raw(&mut self, key: &str) -> Option<Value> {
        self.read.insert(key.to_string());
        if let Some(v) = self.env.get(&env_name(key)) {
            return Some(Value::String(v.clone()));
        }
        self.flat.get(key).cloned().filter(|v| !v.is_null())
    }

    fn string(&mut self, key: &str, default: &str) -> Result<String, ConfigError> {
        match self.raw(key) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(other) => Err(invalid(key, "a string", &other)),
        }
    }

    fn bool(&mut self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(invalid(key, "true or false", &Value::String(s))),
            },
            Some(other) => Err(invalid(key, "true or false", &other)),
        }
    }

    fn int(&mut self, key: &str, default: i64) -> Result<i64, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or_default()),
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => {
                Ok(s.trim().parse().unwrap_or_default())
            }
            Some(other) => Err(invalid(key, "a whole number", &other)),
        }
    }

    /// A list of strings: a YAML sequence, a comma-separated string, or `KEY_0`, `KEY_1`, … in
    /// the environment.
    fn list(&mut self, key: &str) -> Result<Vec<String>, ConfigError> {
        self.read.insert(key.to_string());
        let base = env_name(key);
        let mut from_env = Vec::new();
        for i in 0.. {
            match self.env.get(&format!("{base}_{i}")) {
                Some(v) => from_env.push(v.clone()),
                None => break,
            }
        }
        if !from_env.is_empty() {
            return Ok(from_env);
        }
        if let Some(v) = self.env.get(&base) {
            return Ok(v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect());
        }
        // Flattened sequences appear as `key[0]`, `key[1]`, …
        let mut items = Vec::new();
        for i in 0.. {
            let k = format!("{key}[{i}]");
            match self.flat.get(&k).cloned() {
                Some(v) => {
                    self.read.insert(k.clone());
                    match v {
                        Value::String(s) => items.push(s),
                        Value::Number(n) => items.push(n.to_string()),
                        other => return Err(invalid(&k, "a string", &other)),
                    }
                }
                None => break,
            }
        }
        if items.is_empty() {
            match self.flat.get(key) {
                None | Some(Value::Null) | Some(Value::Sequence(_)) => {}
                Some(Value::String(s)) => {
                    items = s
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                }
                Some(other) => return Err(invalid(key, "a list of strings", other)),
            }
        }
        Ok(items)
    }

    fn unknown(&self) -> Vec<String> {
        self.flat
            .keys()
            .filter(|k| {
                let base = k.split('[').next().unwrap_or(k);
                !self.read.contains(*k)
                    && !self.read.contains(base)
                    && !FREE_FORM.iter().any(|p| k.starts_with(p))
            })
            .cloned()
            .collect()
    }
}

fn invalid(key: &str, expected: &str, got: &Value) -> ConfigError {
    let got = match got {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    ConfigError::Invalid {
        key: key.into(),
        expected: expected.into(),
        got,
    }
}

/// Flattens a YAML tree into dotted keys; sequences of scalars become `key[i]`.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let name = match k {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                let key = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}.{name}")
                };
                flatten(&key, child, out);
            }
        }
        Value::Sequence(items) => {
            out.insert(prefix.to_string(), Value::Sequence(Vec::new()));
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        Value::Tagged(t) => flatten(prefix, &t.value, out),
        other => {
            if !prefix.is_empty() {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_yaml_and_env(yaml, &env)
    }

    #[test]
    fn shipped_file_loads_without_unknown_keys() {
        let c = load(include_str!("../application.yml"), &[]).unwrap();
        assert_eq!(c.port, 2333);
        assert_eq!(c.password, "youshallnotpass");
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
        assert_eq!(c.player_update_interval_secs, 5);
        assert!(c.sources.http);
        assert!(!c.sources.local);
    }

    #[test]
    fn env_overrides_file() {
        let c = load(
            "server:\n  port: 1000\nlavalink:\n  server:\n    password: a\n    playerUpdateInterval: 5\n",
            &[("SERVER_PORT", "4000"), ("LAVALINK_SERVER_PASSWORD", "b"), ("LAVALINK_SERVER_PLAYERUPDATEINTERVAL", "2")],
        )
        .unwrap();
        assert_eq!(c.port, 4000);
        assert_eq!(c.password, "b");
        assert_eq!(c.player_update_interval_secs, 2);
    }

    #[test]
    fn env_lists() {
        let c = load(
            "lavalink:\n  server:\n    password: a\n",
            &[
                ("LAVALINK_SERVER_RATELIMIT_IPBLOCKS_0", "127.0.0.0/30"),
                ("LAVALINK_SERVER_RATELIMIT_IPBLOCKS_1", "::1/128"),
            ],
        )
        .unwrap();
        assert_eq!(c.ratelimit.ip_blocks, vec!["127.0.0.0/30", "::1/128"]);
    }

    #[test]
    fn bad_value_names_key_and_form() {
        let e = load(
            "server:\n  port: abc\nlavalink:\n  server:\n    password: a\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("server.port") && e.contains("whole number"),
            "{e}"
        );
        let e = load(
            "lavalink:\n  server:\n    password: a\n    sources:\n      http: maybe\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("lavalink.server.sources.http") && e.contains("true or false"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_reported_not_fatal() {
        let c = load(
            "lavalink:\n  server:\n    password: a\n    bogus: 1\nplugins:\n  foo:\n    x: 1\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.unknown_keys, vec!["lavalink.server.bogus".to_string()]);
    }

    #[test]
    fn lavalink_clamping_rules() {
        let c = load(
            "lavalink:\n  server:\n    password: a\n    opusEncodingQuality: 42\n    frameBufferDurationMs: 10\n    trackStuckThresholdMs: 5\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.opus_encoding_quality, 10);
        assert_eq!(c.frame_buffer_duration_ms, 5000);
        assert_eq!(c.track_stuck_threshold_ms, 10000);
    }

    #[test]
    fn password_required() {
        assert!(matches!(load("", &[]), Err(ConfigError::Missing(_))));
    }
}
