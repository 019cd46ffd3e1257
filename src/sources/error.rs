//! The friendly exceptions the sources report, worded as Lavalink words them.
//!
//! For `/v4/loadtracks` errors, Lavalink's `cause` describes the friendly exception itself
//! (`<type>: <message>`) and the trace names what caused it; the same shape is used here.

use crate::protocol::load::{Exception, Severity};

/// The exception type Lavalink clients see in `cause`.
const FRIENDLY: &str = "com.sedmelluq.discord.lavaplayer.tools.FriendlyException";

pub const NOT_A_VALID_URL: &str = "Not a valid URL.";
pub const NOT_PLAYABLE: &str = "That URL is not playable.";
pub const UNKNOWN_FORMAT: &str = "Unknown file format.";
pub const CONNECT_FAILED: &str = "Connecting to the URL failed.";
pub const UNSUPPORTED_FORMAT: &str = "Unsupported file format.";

/// A friendly exception with what caused it (`cause_type`: a short type name, `detail`: text).
pub fn friendly(message: &str, severity: Severity, cause_type: &str, detail: &str) -> Exception {
    let cause = format!("{FRIENDLY}: {message}");
    let inner = if detail.is_empty() {
        cause_type.to_string()
    } else {
        format!("{cause_type}: {detail}")
    };
    Exception {
        message: Some(message.to_string()),
        severity,
        cause_stack_trace: format!("{cause}\n\tat acoustic.sources\nCaused by: {inner}\n"),
        cause,
    }
}

pub fn not_a_valid_url(detail: &str) -> Exception {
    friendly(
        NOT_A_VALID_URL,
        Severity::Common,
        "java.net.URISyntaxException",
        detail,
    )
}

pub fn not_playable(detail: &str) -> Exception {
    friendly(
        NOT_PLAYABLE,
        Severity::Common,
        "java.lang.IllegalStateException",
        detail,
    )
}

pub fn unknown_format(detail: &str) -> Exception {
    friendly(
        UNKNOWN_FORMAT,
        Severity::Common,
        "java.lang.IllegalStateException",
        detail,
    )
}

pub fn connect_failed(detail: &str) -> Exception {
    friendly(
        CONNECT_FAILED,
        Severity::Suspicious,
        "java.io.IOException",
        detail,
    )
}

/// The media is of a known container but cannot be played (codec, missing audio track,
/// unreadable structure).
pub fn unsupported_media(message: &str, detail: &str) -> Exception {
    friendly(
        message,
        Severity::Common,
        "java.lang.IllegalStateException",
        detail,
    )
}

/// Reading the bytes failed part-way (timeout, connection, disk).
pub fn read_failed(message: &str, detail: &str) -> Exception {
    friendly(message, Severity::Suspicious, "java.io.IOException", detail)
}

pub fn source_disabled(source_name: &str) -> Exception {
    friendly(
        &format!("The source '{source_name}' is not enabled."),
        Severity::Common,
        "java.lang.IllegalStateException",
        "no source manager with that name",
    )
}

/// Something that should not happen (a task panicked, …): Lavalink's generic wrapper.
pub fn internal(detail: &str) -> Exception {
    friendly(
        "Something went wrong while looking up the track.",
        Severity::Fault,
        "java.lang.RuntimeException",
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_cause_names_the_friendly_exception() {
        let e = not_playable("Status code 500");
        assert_eq!(e.message.as_deref(), Some("That URL is not playable."));
        assert_eq!(e.severity, Severity::Common);
        assert_eq!(
            e.cause,
            "com.sedmelluq.discord.lavaplayer.tools.FriendlyException: That URL is not playable."
        );
        assert!(e.cause_stack_trace.starts_with(&e.cause));
        assert!(
            e.cause_stack_trace
                .contains("Caused by: java.lang.IllegalStateException: Status code 500")
        );
    }
}
