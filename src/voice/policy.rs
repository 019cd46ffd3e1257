//! What to do when the voice gateway closes: resume, reconnect from scratch, or give up and
//! tell the player — by close code, with a bounded retry budget and backoff.
//!
//! Which codes are retried silently follows Lavalink's reference (Koe): up to three times for
//! 1001, 1006, 4000, 4001, 4002, 4003, 4005, 4009, 4012, 4015, 4016 and 4020; any other code
//! (1000, 4004, 4006, 4011, 4014, 4017, 4021, 4022, …) becomes a `WebSocketClosedEvent` at
//! once. Of the retried codes, those where the server side dropped but the session lives on
//! (1001, 1006, 4000, 4015) are resumed (op 7); the others start a fresh session (op 0).

use std::time::Duration;

/// How many silent retries one failure streak gets before it is reported.
pub const MAX_RETRIES: u32 = 3;

/// Close code for "the socket went away without a close frame" (never sent on the wire).
pub const ABNORMAL_CLOSURE: u16 = 1006;

/// What a close code calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// Reopen the socket and send Resume with the last seq_ack.
    Resume,
    /// Drop the session (UDP, keys) and identify again.
    Reconnect,
    /// Do not retry: report the close to the player.
    Surface,
}

/// The action for a close of an established session.
pub fn close_action(code: u16) -> CloseAction {
    match code {
        1001 | ABNORMAL_CLOSURE | 4000 | 4015 => CloseAction::Resume,
        4001 | 4002 | 4003 | 4005 | 4009 | 4012 | 4016 | 4020 => CloseAction::Reconnect,
        _ => CloseAction::Surface,
    }
}

/// The action for a close that happened while a resume was being attempted: the resume
/// failed, so start over — unless the code says never to reconnect.
pub fn resume_failed_action(code: u16) -> CloseAction {
    if never_reconnect(code) {
        CloseAction::Surface
    } else {
        CloseAction::Reconnect
    }
}

/// Codes after which we must not reconnect at all: kicked / main session gone (4014), rate
/// limited (4021), call terminated (4022).
pub fn never_reconnect(code: u16) -> bool {
    matches!(code, 4014 | 4021 | 4022)
}

/// Delay before retry number `attempt` (1-based): 250 ms, 1 s, 2 s, then 4 s, with ±20 %
/// jitter (`jitter` in [0, 1)) so that many connections dropped together do not return in
/// lock-step.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base_ms: u64 = match attempt {
        0 | 1 => 250,
        2 => 1000,
        3 => 2000,
        _ => 4000,
    };
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Duration::from_millis((base_ms as f64 * factor) as u64)
}

/// The retry budget of one connection. A session that stayed ready for [`Self::STABLE_AFTER`]
/// earns a fresh budget.
#[derive(Debug, Clone, Default)]
pub struct RetryBudget {
    used: u32,
}

impl RetryBudget {
    pub const STABLE_AFTER: Duration = Duration::from_secs(10);

    /// Call when a session that had been ready closes, with how long it was ready.
    pub fn note_session_lasted(&mut self, ready_for: Duration) {
        if ready_for >= Self::STABLE_AFTER {
            self.used = 0;
        }
    }

    /// Takes one retry; `None` when the budget is spent. Returns the 1-based attempt number.
    pub fn take(&mut self) -> Option<u32> {
        if self.used >= MAX_RETRIES {
            return None;
        }
        self.used += 1;
        Some(self.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        use CloseAction::*;
        let table: &[(u16, CloseAction)] = &[
            (1000, Surface),
            (1001, Resume),
            (1006, Resume),
            (4000, Resume),
            (4001, Reconnect),
            (4002, Reconnect),
            (4003, Reconnect),
            (4004, Surface),
            (4005, Reconnect),
            (4006, Surface),
            (4009, Reconnect),
            (4011, Surface),
            (4012, Reconnect),
            (4014, Surface),
            (4015, Resume),
            (4016, Reconnect),
            (4017, Surface),
            (4020, Reconnect),
            (4021, Surface),
            (4022, Surface),
            (4999, Surface),
        ];
        for &(code, want) in table {
            assert_eq!(close_action(code), want, "code {code}");
        }
    }

    #[test]
    fn failed_resume_reconnects_except_for_final_codes() {
        assert_eq!(resume_failed_action(4006), CloseAction::Reconnect);
        assert_eq!(resume_failed_action(1006), CloseAction::Reconnect);
        for code in [4014, 4021, 4022] {
            assert_eq!(resume_failed_action(code), CloseAction::Surface);
            assert!(never_reconnect(code));
        }
    }

    #[test]
    fn budget_is_bounded_and_refilled_by_a_stable_session() {
        let mut b = RetryBudget::default();
        assert_eq!(
            (b.take(), b.take(), b.take(), b.take()),
            (Some(1), Some(2), Some(3), None)
        );
        b.note_session_lasted(Duration::from_secs(3));
        assert_eq!(b.take(), None);
        b.note_session_lasted(Duration::from_secs(11));
        assert_eq!(b.take(), Some(1));
    }

    #[test]
    fn backoff_grows_and_jitters_within_bounds() {
        assert_eq!(backoff(1, 0.5), Duration::from_millis(250));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(2, 1.0), Duration::from_millis(1200));
        assert!(backoff(3, 0.5) < backoff(4, 0.5));
    }
}
