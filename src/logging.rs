//! Logging with `tracing`, levels from Lavalink's `logging.level.*` keys.
//!
//! `logging.level.root` sets the default; `logging.level.lavalink` sets the level of the node's
//! own logs (our crate); any other `logging.level.<target>` is passed through as a target
//! directive. `RUST_LOG`, when set, wins over the file.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::Config;

fn level(name: &str) -> &'static str {
    match name {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "WARN" => "warn",
        "ERROR" => "error",
        "OFF" => "off",
        _ => "info",
    }
}

/// The filter directives the configuration asks for.
pub fn directives(config: &Config) -> String {
    let mut parts = Vec::new();
    let root = config
        .log_levels
        .get("root")
        .map(String::as_str)
        .unwrap_or("INFO");
    parts.push(level(root).to_string());
    for (logger, lvl) in &config.log_levels {
        match logger.as_str() {
            "root" => {}
            "lavalink" => parts.push(format!("acoustic={}", level(lvl))),
            other
                if other
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') =>
            {
                parts.push(format!("{other}={}", level(lvl)))
            }
            _ => {}
        }
    }
    if config.request_logging.enabled && !config.log_levels.contains_key("acoustic::request") {
        parts.push("acoustic::request=debug".into());
    }
    parts.join(",")
}

/// Installs the global subscriber (once).
pub fn init(config: &Config) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(directives(config)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        // Colour codes only on a terminal, not in files or the systemd journal.
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
}
