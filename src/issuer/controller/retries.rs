//! Per-request retry state: how many reconciles of one request failed in a row (status write
//! errors, 409 conflicts, panics) and how many of them panicked, so the next wait grows per
//! object (see [`decide::retry_after_failed_reconcile`]) and a request that keeps panicking is
//! failed with `InternalError`; it performs no I/O and computes no delay itself.
//!
//! Entries live from a request's first failed reconcile until one succeeds or the request leaves
//! the cache (answered or deleted), so memory follows the failing requests in flight.
//!
//! [`decide::retry_after_failed_reconcile`]: crate::issuer::decide::retry_after_failed_reconcile

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::Mutex;

/// Consecutive failed reconciles of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Failures {
    /// Failed reconciles in a row (any cause).
    pub(super) total: u32,
    /// Of those, the ones that panicked.
    pub(super) panics: u32,
}

/// What is remembered of one request that failed its last reconcile.
#[derive(Debug, Default)]
struct Entry {
    failures: Failures,
}

/// The failures of every request that failed its last reconcile, by request uid.
#[derive(Default)]
pub(super) struct RetryLog {
    inner: Mutex<HashMap<String, Entry>>,
}

impl RetryLog {
    /// Counts one more failed reconcile of `uid` (a panic when `panicked`); returns the counts
    /// including this one.
    pub(super) fn failed(&self, uid: &str, panicked: bool) -> Failures {
        let mut log = self.lock();
        let entry = &mut log.entry(uid.to_owned()).or_default().failures;
        entry.total = entry.total.saturating_add(1);
        if panicked {
            entry.panics = entry.panics.saturating_add(1);
        }
        *entry
    }

    /// Panics counted for `uid` so far.
    pub(super) fn panics(&self, uid: &str) -> u32 {
        self.lock().get(uid).map_or(0, |e| e.failures.panics)
    }

    /// Forgets `uid`: its reconcile succeeded, or it left the cache.
    pub(super) fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
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
    fn jitter_is_a_fraction_and_varies() {
        let samples: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(samples.windows(2).any(|w| w[0] != w[1]), "{samples:?}");
    }
}
