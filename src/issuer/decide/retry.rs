//! The retry policy of the request front door: how long a transient signing failure waits, and
//! how long a reconcile whose status write failed waits; pure arithmetic, performs no I/O.

use std::time::Duration;

/// Shortest wait before a transient signing failure is retried: a brief blip costs little.
const TRANSIENT_MIN: Duration = Duration::from_secs(1);
/// Longest wait before a transient signing failure is retried: a long outage is still noticed
/// within half a minute of its end.
const TRANSIENT_MAX: Duration = Duration::from_secs(30);
/// Wait before a reconcile whose status write failed (409, 5xx, transport) runs again: the API
/// server's own errors are short-lived, and the write is the only thing left to do.
const AFTER_FAILED_WRITE: Duration = Duration::from_millis(500);

/// Backoff between retries of a transient failure: half the request's age, clamped to
/// 1 s – 30 s, so a long outage does not hammer the API server.
pub fn retry_backoff(age: Duration) -> Duration {
    (age / 2).clamp(TRANSIENT_MIN, TRANSIENT_MAX)
}

/// Delay before a reconcile that failed (its status write, or a panic) is run again.
pub fn retry_after_failed_reconcile() -> Duration {
    AFTER_FAILED_WRITE
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
    fn a_failed_write_is_retried_after_half_a_second() {
        assert_eq!(retry_after_failed_reconcile(), Duration::from_millis(500));
    }
}
