//! De-duplication of answers: the requests this controller answered and the resourceVersion it
//! answered, so that a stale cached copy is never decided (or signed) again; it performs no I/O
//! and decides no outcome.
//!
//! This is the one place that knows how "already answered" is remembered; a status write guarded
//! by the request's resourceVersion can replace it without touching the reconcile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests this controller answered, with the resourceVersion it answered: a reconcile of that
/// same (now stale) cached version must not sign again before the watch delivers our write.
#[derive(Default)]
pub(crate) struct WrittenLog {
    inner: Mutex<HashMap<String, (String, Instant)>>,
}

/// How long an answered request is remembered when its deletion is never observed.
const WRITTEN_LOG_TTL: Duration = Duration::from_secs(600);

/// Entries beyond which a record first drops expired ones (then again at each power of two).
const SWEEP_FROM: usize = 4096;

impl WrittenLog {
    /// Whether `resource_version` of request `uid` is the version this controller answered.
    pub(crate) fn is_stale(&self, uid: &str, resource_version: &str) -> bool {
        self.lock()
            .get(uid)
            .is_some_and(|(rv, _)| rv == resource_version)
    }

    /// Remembers that the version `resource_version` of `uid` is being answered.
    pub(crate) fn record(&self, uid: String, resource_version: String) {
        let mut log = self.lock();
        if log.len() >= SWEEP_FROM && log.len().is_power_of_two() {
            log.retain(|_, (_, at)| at.elapsed() < WRITTEN_LOG_TTL);
        }
        log.insert(uid, (resource_version, Instant::now()));
    }

    /// Forgets `uid`: its answer is in the cache now, or it was never written.
    pub(crate) fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        // A panic while holding the lock leaves a consistent map (each operation is one call).
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_answered_version_is_stale_until_forgotten() {
        let log = WrittenLog::default();
        assert!(!log.is_stale("u", "1"));
        log.record("u".into(), "1".into());
        assert!(log.is_stale("u", "1"));
        assert!(!log.is_stale("u", "2"), "a newer version is decided again");
        log.forget("u");
        assert!(!log.is_stale("u", "1"));
    }
}
