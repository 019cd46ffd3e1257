//! yt-dlp failures → Lavalink exceptions (or an `empty` result), with Lavalink's severities:
//! `common` for expected content problems (unavailable, private, age-gated, geo-blocked,
//! removed), `suspicious` for network trouble and odd upstream answers, `fault` for the rest.
//! Pure: no I/O.

use serde::Deserialize;

use crate::protocol::load::{Exception, Severity};

use super::route::Source;

/// A failure as the helper reports it (the root cause yt-dlp raised).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct HelperError {
    /// Python exception class: `ExtractorError`, `GeoRestrictedError`, `UserNotLive`,
    /// `UnsupportedError`, `DownloadError`, ….
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    /// yt-dlp's "this is not a bug" flag (set for content problems and network errors).
    pub expected: bool,
    pub http_status: Option<u16>,
    pub extractor: Option<String>,
    pub countries: Vec<String>,
    /// `Type: message` of the underlying cause (e.g. an HTTP error).
    pub cause: Option<String>,
    /// The cause is a transport error (connection refused, DNS, timeout, TLS).
    pub network: bool,
    /// Python traceback of unexpected failures.
    pub trace: Option<String>,
}

/// What a failure means for a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing there (`loadType: empty`): HTTP 404, an offline Twitch channel.
    Empty,
    /// yt-dlp has no extractor for the URL: the identifier is not ours after all.
    Unsupported,
    Error(Exception),
}

const CAUSE: &str = "YtDlpException";

fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| haystack.contains(n))
}

/// yt-dlp's message without its decorations: the `ERROR: [extractor] id: ` prefix, the
/// `(caused by …)` suffix, and advice meant for command-line users.
pub fn clean_message(message: &str) -> String {
    let mut m = message.trim();
    if let Some(rest) = m.strip_prefix("ERROR: ") {
        m = rest;
    }
    // "[youtube] dQw4w9WgXcQ: Video unavailable" → "Video unavailable"
    if m.starts_with('[')
        && let Some(end) = m.find("] ")
    {
        m = &m[end + 2..];
        if let Some(colon) = m.find(": ")
            && !m[..colon].contains(' ')
        {
            m = &m[colon + 2..];
        }
    }
    if let Some(i) = m.find(" (caused by ") {
        m = &m[..i];
    }
    let mut out = String::new();
    for sentence in m.split_inclusive(". ") {
        let s = sentence.trim();
        if s.contains("--") || s.contains("yt-dlp") || s.contains("github.com") {
            continue;
        }
        out.push_str(sentence);
    }
    let out = out.trim().trim_end_matches(". Use").trim();
    if out.is_empty() {
        m.trim().to_string()
    } else {
        out.to_string()
    }
}

fn exception(message: impl Into<String>, severity: Severity, err: &HelperError) -> Exception {
    let detail = clean_message(&err.message);
    let mut e = Exception::new(message, severity, CAUSE, &detail);
    let mut trace = format!("{}\n\tat yt-dlp ({})\n", e.cause, err.kind);
    if let Some(cause) = &err.cause {
        trace.push_str(&format!("Caused by: {cause}\n"));
    }
    if let Some(t) = &err.trace {
        trace.push_str(t);
    }
    e.cause_stack_trace = trace;
    e
}

/// Classifies a failure of a lookup for `source`.
pub fn classify(err: &HelperError, source: Source) -> Outcome {
    let raw = err.message.to_lowercase();
    let text = raw.as_str();
    let clean = clean_message(&err.message);

    if err.kind == "UnsupportedError" || text.starts_with("unsupported url") {
        return Outcome::Unsupported;
    }
    if err.kind == "UserNotLive" || (source == Source::Twitch && text.contains("is offline")) {
        return Outcome::Empty;
    }
    if err.http_status == Some(404) && source != Source::Youtube {
        return Outcome::Empty;
    }
    if err.kind == "GeoRestrictedError"
        || contains_any(
            text,
            &[
                "not available in your country",
                "not available from your location",
                "geo restrict",
                "geo-restrict",
                "blocked it in your country",
                "uploader has not made this video available in your country",
            ],
        )
    {
        return Outcome::Error(exception(
            "This track is not available in the node's country.",
            Severity::Common,
            err,
        ));
    }
    if contains_any(
        text,
        &["confirm you're not a bot", "confirm you’re not a bot"],
    ) {
        return Outcome::Error(exception(
            "The site asked to confirm this is not a bot; try again later.",
            Severity::Suspicious,
            err,
        ));
    }
    if contains_any(
        text,
        &[
            "private video",
            "this video is private",
            "is private",
            "private track",
            "private playlist",
        ],
    ) {
        return Outcome::Error(exception("This is a private video.", Severity::Common, err));
    }
    if contains_any(
        text,
        &[
            "confirm your age",
            "age-restricted",
            "age restricted",
            "inappropriate for some users",
            "age verification",
            "age gate",
        ],
    ) {
        return Outcome::Error(exception(
            "This video requires age verification.",
            Severity::Common,
            err,
        ));
    }
    if contains_any(
        text,
        &[
            "removed",
            "terminated",
            "copyright",
            "no longer available",
            "has been deleted",
            "account associated with this video",
        ],
    ) {
        return Outcome::Error(exception(
            format!("This track has been removed: {clean}"),
            Severity::Common,
            err,
        ));
    }
    if contains_any(
        text,
        &[
            "live event will begin",
            "premieres in",
            "this live event has ended",
            "is not currently live",
            "members-only",
            "members only",
            "join this channel",
            "requires payment",
            "purchase",
            "drm",
            "sign in to",
            "login required",
            "log in",
            "requires authentication",
            "registered users",
        ],
    ) {
        return Outcome::Error(exception(clean, Severity::Common, err));
    }
    if contains_any(
        text,
        &[
            "video unavailable",
            "is unavailable",
            "is not available",
            "this video is unavailable",
            "does not exist",
            "not found",
            "no video formats",
            "no formats",
            "requested format is not available",
        ],
    ) || err.http_status == Some(404)
        || err.http_status == Some(410)
    {
        return Outcome::Error(exception(
            format!("This track is unavailable: {clean}"),
            Severity::Common,
            err,
        ));
    }
    if err.network
        || err.http_status.is_some()
        || contains_any(
            text,
            &[
                "unable to download",
                "timed out",
                "connection",
                "name or service not known",
                "temporary failure in name resolution",
                "network is unreachable",
                "ssl",
                "http error",
                "unable to extract",
                "unable to parse",
                "failed to parse",
                "unexpected response",
                "json",
            ],
        )
    {
        return Outcome::Error(exception(
            format!(
                "Loading the track from {} failed: {clean}",
                site_name(source)
            ),
            Severity::Suspicious,
            err,
        ));
    }
    if err.expected {
        return Outcome::Error(exception(clean, Severity::Common, err));
    }
    Outcome::Error(exception(
        "Something went wrong while looking up the track.",
        Severity::Fault,
        err,
    ))
}

fn site_name(source: Source) -> &'static str {
    match source {
        Source::Youtube => "YouTube",
        Source::Soundcloud => "SoundCloud",
        Source::Bandcamp => "Bandcamp",
        Source::Twitch => "Twitch",
        Source::Vimeo => "Vimeo",
        Source::Niconico => "Niconico",
        Source::Generic => "the site",
    }
}

/// The resolver's own failures (not yt-dlp's).
pub fn resolver_timeout(secs: u64) -> Exception {
    Exception::new(
        "Looking up the track took too long.",
        Severity::Suspicious,
        "java.util.concurrent.TimeoutException",
        &format!("yt-dlp did not answer within {secs} s"),
    )
}

pub fn resolver_busy() -> Exception {
    Exception::new(
        "Too many tracks are being looked up at once; try again shortly.",
        Severity::Suspicious,
        "java.util.concurrent.RejectedExecutionException",
        "the yt-dlp request queue is full",
    )
}

pub fn resolver_fault(detail: &str) -> Exception {
    Exception::new(
        "Something went wrong while looking up the track.",
        Severity::Fault,
        CAUSE,
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: &str, message: &str) -> HelperError {
        HelperError {
            kind: kind.into(),
            message: message.into(),
            expected: true,
            ..Default::default()
        }
    }

    fn severity_of(e: &HelperError, source: Source) -> (Severity, String) {
        match classify(e, source) {
            Outcome::Error(x) => (x.severity, x.message.unwrap()),
            other => panic!("expected an error for {e:?}, got {other:?}"),
        }
    }

    #[test]
    fn cleaning_strips_prefixes_and_cli_advice() {
        assert_eq!(
            clean_message("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable"),
            "Video unavailable"
        );
        assert_eq!(
            clean_message(
                "[youtube] abcdefghijk: Sign in to confirm your age. This video may be inappropriate for some users. Use --cookies-from-browser or --cookies for the authentication. See  https://github.com/yt-dlp/yt-dlp/wiki/FAQ for how to pass cookies"
            ),
            "Sign in to confirm your age. This video may be inappropriate for some users."
        );
        assert_eq!(
            clean_message(
                "Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404: Not Found>)"
            ),
            "Unable to download webpage: HTTP Error 404: Not Found"
        );
    }

    #[test]
    fn content_problems_are_common() {
        let cases = [
            (
                "ExtractorError",
                "[youtube] x: Video unavailable. This video has been removed by the uploader",
                "removed",
            ),
            (
                "ExtractorError",
                "[youtube] x: Private video. Sign in if you've been granted access to this video",
                "private",
            ),
            (
                "ExtractorError",
                "[youtube] x: Sign in to confirm your age. This video may be inappropriate for some users.",
                "age",
            ),
            (
                "GeoRestrictedError",
                "The uploader has not made this video available in your country",
                "country",
            ),
            (
                "ExtractorError",
                "[youtube] x: Video unavailable",
                "unavailable",
            ),
            (
                "ExtractorError",
                "[youtube] x: This live event will begin in 3 hours.",
                "live event",
            ),
            (
                "ExtractorError",
                "[youtube] x: Join this channel to get access to members-only content like this video",
                "members",
            ),
            ("DRMError", "This video is DRM protected", "DRM"),
        ];
        for (kind, msg, what) in cases {
            let (sev, text) = severity_of(&err(kind, msg), Source::Youtube);
            assert_eq!(sev, Severity::Common, "{what}: {text}");
            assert!(!text.is_empty());
        }
        let (_, m) = severity_of(
            &err("ExtractorError", "[youtube] x: Private video. Sign in"),
            Source::Youtube,
        );
        assert_eq!(m, "This is a private video.");
        let (_, m) = severity_of(&err("GeoRestrictedError", "blocked"), Source::Youtube);
        assert!(m.contains("country"));
    }

    #[test]
    fn network_and_odd_answers_are_suspicious() {
        let mut e = err(
            "ExtractorError",
            "Unable to download webpage: [Errno 111] Connection refused",
        );
        e.network = true;
        let (sev, msg) = severity_of(&e, Source::Soundcloud);
        assert_eq!(sev, Severity::Suspicious);
        assert!(
            msg.contains("SoundCloud") && msg.contains("Connection refused"),
            "{msg}"
        );

        let mut e = err(
            "ExtractorError",
            "Unable to download JSON metadata: HTTP Error 500",
        );
        e.http_status = Some(500);
        assert_eq!(severity_of(&e, Source::Youtube).0, Severity::Suspicious);

        let e = err("RegexNotFoundError", "Unable to extract uploader id");
        assert_eq!(severity_of(&e, Source::Vimeo).0, Severity::Suspicious);

        let e = err("ExtractorError", "Sign in to confirm you're not a bot");
        assert_eq!(severity_of(&e, Source::Youtube).0, Severity::Suspicious);
    }

    #[test]
    fn unknown_failures_are_faults() {
        let mut e = err("KeyError", "'formats'");
        e.expected = false;
        e.trace = Some("Traceback ...".into());
        let Outcome::Error(x) = classify(&e, Source::Youtube) else {
            panic!()
        };
        assert_eq!(x.severity, Severity::Fault);
        assert_eq!(
            x.message.as_deref(),
            Some("Something went wrong while looking up the track.")
        );
        assert!(x.cause.contains("'formats'"));
        assert!(x.cause_stack_trace.contains("Traceback"));
    }

    #[test]
    fn empty_and_unsupported() {
        assert_eq!(
            classify(
                &err("UserNotLive", "The channel is not currently live"),
                Source::Twitch
            ),
            Outcome::Empty
        );
        let mut e = err(
            "ExtractorError",
            "Unable to download webpage: HTTP Error 404: Not Found",
        );
        e.http_status = Some(404);
        assert_eq!(classify(&e, Source::Bandcamp), Outcome::Empty);
        assert_eq!(classify(&e, Source::Generic), Outcome::Empty);
        assert!(matches!(classify(&e, Source::Youtube), Outcome::Error(_)));
        assert_eq!(
            classify(
                &err("UnsupportedError", "Unsupported URL: http://x/"),
                Source::Generic
            ),
            Outcome::Unsupported
        );
    }

    #[test]
    fn exception_shape() {
        let Outcome::Error(x) = classify(
            &err("ExtractorError", "ERROR: [youtube] x: Video unavailable"),
            Source::Youtube,
        ) else {
            panic!()
        };
        assert_eq!(x.cause, "YtDlpException: Video unavailable");
        assert!(
            x.cause_stack_trace
                .starts_with("YtDlpException: Video unavailable")
        );
        let v = serde_json::to_value(&x).unwrap();
        assert_eq!(v["severity"], "common");
    }
}
