//! The retry policy of the request front door: how long a transient signing failure waits, how
//! long a reconcile that failed (its status write, a 409, a panic) waits — per object,
//! exponential with jitter, never sooner than the API server's `Retry-After` — and how many
//! panics a request survives; pure arithmetic, performs no I/O.

use std::time::Duration;

/// Shortest wait before a transient signing failure is retried: a brief blip costs little.
const TRANSIENT_MIN: Duration = Duration::from_secs(1);
/// Longest wait before a transient signing failure is retried: a long outage is still noticed
/// within half a minute of its end.
const TRANSIENT_MAX: Duration = Duration::from_secs(30);
/// First wait after a failed reconcile: the API server's own errors are short-lived, and the
/// write is the only thing left to do.
const FAILED_FIRST: Duration = Duration::from_millis(250);
/// Longest wait after failed reconciles of one object (before jitter): a broken request or a
/// long API outage is retried twice a minute, not hammered.
const FAILED_MAX: Duration = Duration::from_secs(30);
/// Shortest wait after a 409 on a status write: the watch normally delivers the fresh copy
/// sooner and triggers the new decision at once, so this requeue is only a safety net (a 409
/// that changed nothing); waiting less would decide the stale cached copy again while the watch
/// lags, and sign a certificate that is refused once more.
pub const AFTER_CONFLICT: Duration = Duration::from_secs(1);
/// Longest `Retry-After` honoured: a larger value (a misconfigured proxy) is capped here.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

/// Panics of the reconcile of one request after which it is marked `Failed` with reason
/// `InternalError` instead of being tried again (the bug would only repeat).
pub const MAX_PANICS: u32 = 3;

/// Backoff between retries of a transient failure: half the request's age, clamped to
/// 1 s – 30 s, so a long outage does not hammer the API server.
pub fn retry_backoff(age: Duration) -> Duration {
    (age / 2).clamp(TRANSIENT_MIN, TRANSIENT_MAX)
}

/// Delay before the `failures`-th consecutive failed reconcile of one object (1 for the first)
/// runs again: 250 ms doubled per failure up to 30 s, then scaled by `jitter` into its upper
/// half (`jitter` in `[0, 1)`: the delay is `d/2 + jitter·d/2`), so objects that failed together
/// do not retry together. Never sooner than `retry_after` (the API server's `Retry-After` on a
/// 429, or [`AFTER_CONFLICT`] after a 409; capped at 5 minutes).
pub fn retry_after_failed_reconcile(
    failures: u32,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let exp = FAILED_FIRST
        .saturating_mul(1u32 << doublings)
        .min(FAILED_MAX);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let jittered = exp / 2 + exp.mul_f64(jitter / 2.0);
    match retry_after {
        Some(server) => jittered.max(server.min(RETRY_AFTER_MAX)),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_backoff_is_half_the_age_within_one_and_thirty_seconds() {
        // (request age in ms, expected backoff in ms)
        let cases = [
            (0, 1_000),
            (1_500, 1_000),
            (2_000, 1_000),
            (10_000, 5_000),
            (59_000, 29_500),
            (60_000, 30_000),
            (3_600_000, 30_000),
        ];
        for (age_ms, want_ms) in cases {
            assert_eq!(
                retry_backoff(Duration::from_millis(age_ms)),
                Duration::from_millis(want_ms),
                "age {age_ms} ms"
            );
        }
    }

    #[test]
    fn failed_reconciles_back_off_exponentially_within_a_jittered_band() {
        // (consecutive failures, delay with no jitter, delay with the most jitter) in ms
        let cases = [
            (0, 125, 250),
            (1, 125, 250),
            (2, 250, 500),
            (3, 500, 1_000),
            (5, 2_000, 4_000),
            (8, 15_000, 30_000),
            (9, 15_000, 30_000),
            (u32::MAX, 15_000, 30_000),
        ];
        for (failures, low, high) in cases {
            assert_eq!(
                retry_after_failed_reconcile(failures, 0.0, None),
                Duration::from_millis(low),
                "{failures} failures, no jitter"
            );
            assert_eq!(
                retry_after_failed_reconcile(failures, 1.0, None),
                Duration::from_millis(high),
                "{failures} failures, full jitter"
            );
            let mid = retry_after_failed_reconcile(failures, 0.5, None);
            assert!(
                mid > Duration::from_millis(low) && mid < Duration::from_millis(high),
                "{failures}: {mid:?}"
            );
        }
        assert_eq!(
            retry_after_failed_reconcile(1, f64::NAN, None),
            Duration::from_millis(125)
        );
    }

    #[test]
    fn retry_after_is_a_floor_capped_at_five_minutes() {
        let server = Some(Duration::from_secs(3));
        assert_eq!(
            retry_after_failed_reconcile(1, 0.9, server),
            Duration::from_secs(3)
        );
        // A longer own backoff wins over a shorter Retry-After.
        assert_eq!(
            retry_after_failed_reconcile(9, 1.0, Some(Duration::from_secs(1))),
            Duration::from_secs(30)
        );
        assert_eq!(
            retry_after_failed_reconcile(1, 0.0, Some(Duration::from_secs(86_400))),
            Duration::from_secs(300)
        );
    }
}
