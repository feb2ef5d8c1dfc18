//! Supervision of the bootstrap's background tasks (sub-CA rotation, configuration refresh): a
//! task that panics or ends is restarted with exponential backoff and jitter; while one keeps
//! failing, the instance reports not ready and says why.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng as _;

use super::signer::{Shared, write};

/// The supervised background tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupervisedTask {
    /// Obtains the next sub-CA at 2/3 of the current one's lifetime (or when asked).
    Rotation,
    /// Fetches the configuration and policies, and sends usage reports.
    Refresh,
}

impl SupervisedTask {
    /// Its name in logs and in the readiness message.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rotation => "sub-CA rotation",
            Self::Refresh => "configuration refresh",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Rotation => 0,
            Self::Refresh => 1,
        }
    }
}

/// How a failed task is restarted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SupervisionPolicy {
    /// Pause before the first restart; doubled for each further failure in a row.
    pub(crate) first_backoff: Duration,
    /// Longest pause between restarts.
    pub(crate) max_backoff: Duration,
    /// After this many failures in a row the instance is not ready until the task runs again.
    pub(crate) not_ready_after: u32,
    /// A restarted task counts as recovered once it has run this long without failing *and*
    /// has completed at least one cycle of real work ([`TaskHealth::progress`]) since the restart:
    /// a task that sleeps longer than this before its work (the refresh task waits a refresh
    /// interval first) is not "stable" merely for having slept.
    pub(crate) stable_after: Duration,
}

impl Default for SupervisionPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            not_ready_after: 3,
            stable_after: Duration::from_secs(60),
        }
    }
}

impl SupervisionPolicy {
    /// The pause after the `failures`-th failure in a row: `first · 2^(failures−1)` capped, scaled
    /// by a random factor in [0.5, 1] so that replicas do not restart in step.
    fn backoff(&self, failures: u32) -> Duration {
        let exp = self
            .first_backoff
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
            .min(self.max_backoff);
        exp.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// Restart counters of the supervised tasks, their progress signals, and (in unit tests)
/// injected panics.
#[derive(Default)]
pub(crate) struct TaskHealth {
    restarts: [AtomicU64; 2],
    injected_panics: [AtomicU32; 2],
    /// Cycles of real work each task completed since start.
    progress: [AtomicU64; 2],
    /// Wakes the supervisor when a task reports progress.
    progressed: [tokio::sync::Notify; 2],
    /// The pause before the latest restart of each task, milliseconds.
    last_restart_delay_ms: [AtomicU64; 2],
}

impl TaskHealth {
    /// How many times `task` was restarted since start.
    pub(crate) fn restarts(&self, task: SupervisedTask) -> u64 {
        self.restarts[task.index()].load(Ordering::Relaxed)
    }

    /// Called by a task after each completed cycle of real work (not after a mere wait): only
    /// progress lets the supervisor count a restarted task as recovered.
    pub(crate) fn progress(&self, task: SupervisedTask) {
        self.progress[task.index()].fetch_add(1, Ordering::Relaxed);
        self.progressed[task.index()].notify_one();
    }

    fn progress_count(&self, task: SupervisedTask) -> u64 {
        self.progress[task.index()].load(Ordering::Relaxed)
    }

    /// The pause before the latest restart of `task` (zero before the first).
    #[cfg(test)]
    pub(crate) fn last_restart_delay(&self, task: SupervisedTask) -> Duration {
        Duration::from_millis(self.last_restart_delay_ms[task.index()].load(Ordering::Relaxed))
    }

    /// Makes the next `count` iterations of `task` panic (a test seam: nothing else sets it).
    #[cfg(test)]
    pub(crate) fn inject_panics(&self, task: SupervisedTask, count: u32) {
        self.injected_panics[task.index()].store(count, Ordering::Relaxed);
    }

    /// Called by each task once per iteration: panics when a test injected a panic.
    pub(crate) fn checkpoint(&self, task: SupervisedTask) {
        let injected = &self.injected_panics[task.index()];
        if injected.load(Ordering::Relaxed) > 0
            && injected
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
        {
            panic!("injected panic in the {} task", task.name());
        }
    }
}

/// Runs `make()` as `task` under supervision until the returned handle is aborted (aborting it
/// also aborts the running instance).
pub(crate) fn spawn_supervised<F, Fut>(
    task: SupervisedTask,
    policy: SupervisionPolicy,
    shared: Arc<Shared>,
    health: Arc<TaskHealth>,
    make: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            // A JoinSet aborts what it holds when dropped: aborting the supervisor ends the task.
            let mut running = tokio::task::JoinSet::new();
            // Recovery needs both: `stable_after` without a failure, and one completed cycle of
            // work since this restart. Time alone is not enough: a task that sleeps before its
            // work would look stable while it has not run at all.
            let progress_before = health.progress_count(task);
            let stable_at = tokio::time::Instant::now() + policy.stable_after;
            running.spawn(make());
            let outcome = loop {
                let now = tokio::time::Instant::now();
                if failures > 0 && now >= stable_at && health.progress_count(task) > progress_before
                {
                    failures = 0;
                    if write(&shared.blockers)
                        .stalled
                        .remove(task.name())
                        .is_some()
                    {
                        tracing::info!(task = task.name(), "background task runs again");
                    }
                }
                tokio::select! {
                    joined = running.join_next() => break joined,
                    () = tokio::time::sleep_until(stable_at), if failures > 0 && now < stable_at => {}
                    // A stale wake-up (progress of an earlier run) only re-checks the count.
                    () = health.progressed[task.index()].notified(), if failures > 0 && now >= stable_at => {}
                }
            };
            let why = match outcome {
                Some(Err(err)) if err.is_panic() => {
                    format!("panicked: {}", panic_message(err.into_panic()))
                }
                // Cancelled: only our own abort does that, and it ends the supervisor too.
                Some(Err(_)) => return,
                Some(Ok(())) | None => "ended unexpectedly".to_owned(),
            };
            failures = failures.saturating_add(1);
            health.restarts[task.index()].fetch_add(1, Ordering::Relaxed);
            let delay = policy.backoff(failures);
            health.last_restart_delay_ms[task.index()].store(
                u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            tracing::error!(
                task = task.name(),
                failures,
                restart_in_ms = delay.as_millis() as u64,
                "background task {why}; restarting it"
            );
            if failures >= policy.not_ready_after {
                write(&shared.blockers).stalled.insert(
                    task.name(),
                    format!(
                        "the {} task failed {failures} times in a row (last: {why}); restarting it with backoff",
                        task.name()
                    ),
                );
            }
            tokio::time::sleep(delay).await;
        }
    })
}

/// The text of a panic payload, one bounded line.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-text panic".to_owned()
    };
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    firefly_core::util::truncate_at_char_boundary(&line, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_pause_up_to_the_cap_with_jitter() {
        let policy = SupervisionPolicy::default();
        for failures in 1..20 {
            let full = Duration::from_secs(1)
                .saturating_mul(2u32.saturating_pow(failures - 1))
                .min(Duration::from_secs(60));
            let wait = policy.backoff(failures);
            assert!(wait >= full / 2 && wait <= full, "{failures}: {wait:?}");
        }
    }

    #[test]
    fn panic_payloads_become_one_bounded_line() {
        assert_eq!(panic_message(Box::new("boom\nthere")), "boom there");
        assert_eq!(
            panic_message(Box::new(format!("x{}", "y".repeat(500))))
                .chars()
                .count(),
            201
        );
        assert_eq!(panic_message(Box::new(7u8)), "a non-text panic");
    }
}
