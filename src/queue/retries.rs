//! Per-object retry state shared by the front doors: how many reconciles of one object failed in
//! a row (status write errors, 409 conflicts, panics), so the next wait grows per object (see
//! [`retry_after_failed_reconcile`]) and never comes sooner than the API server's `Retry-After`;
//! it performs no I/O and computes no delay itself.
//!
//! Entries live from an object's first failed reconcile until one succeeds or the door forgets
//! it (the CertificateRequest door does when a request leaves its cache). A door that cannot tell
//! when an object left (one deleted while its writes were failing) loses nothing either: an entry
//! whose last failure is older than [`FORGET_AFTER`] is dropped as the log grows, so memory
//! follows the objects failing now.
//!
//! [`retry_after_failed_reconcile`]: crate::issuer::decide::retry_after_failed_reconcile

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An entry whose last failure is this old is forgotten when the log is pruned: longer than the
/// longest wait between two retries (30 s of backoff, or a `Retry-After` capped at 5 minutes), so
/// an object still being retried keeps its count.
pub(crate) const FORGET_AFTER: Duration = Duration::from_secs(600);
/// The log is not pruned below this many entries.
const PRUNE_FLOOR: usize = 1_024;

/// Consecutive failed reconciles of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Failures {
    /// Failed reconciles in a row (any cause).
    pub(crate) total: u32,
    /// Of those, the ones that panicked.
    pub(crate) panics: u32,
}

/// What is remembered of one object that failed its last reconcile.
#[derive(Debug)]
struct Entry {
    failures: Failures,
    /// When its last failure was counted.
    last: Instant,
}

/// The failures of every object that failed its last reconcile, by object uid.
#[derive(Default)]
pub(crate) struct RetryLog {
    inner: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    entries: HashMap<String, Entry>,
    /// Prune when the log reaches this many entries (twice what the last pruning kept).
    prune_at: usize,
}

impl RetryLog {
    /// Counts one more failed reconcile of `uid` (a panic when `panicked`); returns the counts
    /// including this one.
    pub(crate) fn failed(&self, uid: &str, panicked: bool) -> Failures {
        self.failed_at(uid, panicked, Instant::now())
    }

    fn failed_at(&self, uid: &str, panicked: bool, now: Instant) -> Failures {
        let mut log = self.lock();
        if log.entries.len() >= log.prune_at.max(PRUNE_FLOOR) {
            log.entries
                .retain(|_, e| now.saturating_duration_since(e.last) < FORGET_AFTER);
            log.prune_at = log.entries.len().saturating_mul(2);
        }
        let entry = log.entries.entry(uid.to_owned()).or_insert(Entry {
            failures: Failures::default(),
            last: now,
        });
        entry.last = now;
        let counts = &mut entry.failures;
        counts.total = counts.total.saturating_add(1);
        if panicked {
            counts.panics = counts.panics.saturating_add(1);
        }
        *counts
    }

    /// Panics counted for `uid` so far.
    pub(crate) fn panics(&self, uid: &str) -> u32 {
        self.lock()
            .entries
            .get(uid)
            .map_or(0, |e| e.failures.panics)
    }

    /// Forgets `uid`: its reconcile succeeded, or it left the cache.
    pub(crate) fn forget(&self, uid: &str) {
        self.lock().entries.remove(uid);
    }

    /// Objects with failures remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        // Every operation is one map call: a panic elsewhere cannot leave it half-done.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A jitter in `[0, 1)` from the standard library's randomly seeded hasher: spreads retries of
/// objects that failed together; not for anything secret.
pub(crate) fn jitter() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    // The top 53 bits as a fraction: exactly representable in an f64.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

impl RetryLog {
    /// Counts one more failed reconcile of `uid` (a panic when `panicked`) and returns how long
    /// to wait before the next: the shared backoff, never sooner than the API server's
    /// `retry_after`. Logs the failure (`error`) at warn with the counts and the delay.
    pub(crate) fn next_attempt(
        &self,
        uid: &str,
        panicked: bool,
        retry_after: Option<Duration>,
        error: &dyn std::fmt::Display,
    ) -> Duration {
        let failures = self.failed(uid, panicked);
        let delay = crate::issuer::decide::retry_after_failed_reconcile(
            failures.total,
            jitter(),
            retry_after,
        );
        tracing::warn!(
            %error,
            failures = failures.total,
            ?retry_after,
            ?delay,
            "reconcile failed; deciding again after the delay"
        );
        delay
    }
}

/// The wait the API server asks for with a 429 (Too Many Requests) or 503 answer carrying
/// `Retry-After` (`details.retryAfterSeconds` of the Status), if `error` is one.
pub(crate) fn server_retry_after(error: &kube::Error) -> Option<Duration> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    let seconds = status.details.as_ref()?.retry_after_seconds;
    (matches!(status.code, 429 | 503) && seconds > 0).then(|| Duration::from_secs(seconds.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_per_request_until_forgotten() {
        let log = RetryLog::default();
        assert_eq!(
            log.failed("a", false),
            Failures {
                total: 1,
                panics: 0
            }
        );
        assert_eq!(
            log.failed("a", true),
            Failures {
                total: 2,
                panics: 1
            }
        );
        assert_eq!(log.failed("b", true).total, 1, "counted per request");
        assert_eq!(log.panics("a"), 1);
        log.forget("a");
        assert_eq!(log.panics("a"), 0);
        assert_eq!(log.failed("a", false).total, 1);
    }

    #[test]
    fn entries_of_objects_that_stopped_failing_are_dropped_as_the_log_grows() {
        let log = RetryLog::default();
        let start = Instant::now();
        for i in 0..PRUNE_FLOOR - 1 {
            log.failed_at(&format!("old-{i}"), false, start);
        }
        // old-0 is still failing, within FORGET_AFTER of the next ones.
        let soon = start + FORGET_AFTER / 2;
        assert_eq!(log.failed_at("old-0", false, soon).total, 2);
        let late = start + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(log.failed_at("new", false, late).total, 1);
        assert_eq!(log.len(), PRUNE_FLOOR, "not pruned below the floor");
        // The log is full: this failure prunes every entry older than FORGET_AFTER.
        assert_eq!(log.failed_at("next", false, late).total, 1);
        assert_eq!(log.len(), 3, "old-0, new and next are kept");
        assert_eq!(
            log.failed_at("old-0", false, late).total,
            3,
            "its count kept"
        );
        assert_eq!(
            log.failed_at("old-1", false, late).total,
            1,
            "forgotten, counts from the start again"
        );
    }

    #[test]
    fn only_a_throttling_answer_carries_a_retry_after() {
        // As the client decodes the API server's Status.
        let answer = |code: u16, seconds: u32| {
            let status: kube::core::Status = serde_json::from_value(serde_json::json!({
                "code": code,
                "details": {"retryAfterSeconds": seconds},
            }))
            .expect("a Status");
            kube::Error::Api(Box::new(status))
        };
        assert_eq!(
            server_retry_after(&answer(429, 7)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            server_retry_after(&answer(503, 2)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(server_retry_after(&answer(500, 7)), None);
        assert_eq!(server_retry_after(&answer(429, 0)), None);
    }

    #[test]
    fn jitter_is_a_fraction_and_varies() {
        let samples: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(samples.windows(2).any(|w| w[0] != w[1]), "{samples:?}");
    }
}
