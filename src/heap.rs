//! Gives the memory of a finished burst back to the OS.
//!
//! A backlog is listed, decided and dropped in seconds: the requests leave the caches, but glibc's
//! allocator keeps the freed middle of its heap resident, so the process would stay at its peak
//! for ever (hundreds of MiB after a 100,000-request backlog). [`release_after_bursts`] watches
//! the resident size and, once it has grown well past what it was after the last release and has
//! stopped growing (the burst is over), asks the allocator to return its free pages
//! ([`firefly_tlspc::bootstrap::locked_key::release_free_heap`]).

use std::time::Duration;

use firefly_tlspc::bootstrap::locked_key::release_free_heap;

/// How often the resident size is read.
const TICK: Duration = Duration::from_secs(5);
/// Growth over the size after the last release that is worth a release.
const WORTH_RELEASING: u64 = 32 * 1024 * 1024;
/// Growth between two reads under which the burst is taken as over.
const STILL: u64 = 4 * 1024 * 1024;

/// When to release, from successive readings of the resident size.
#[derive(Debug)]
struct Releases {
    /// The resident size after the last release (or the first reading).
    baseline: u64,
    /// The previous reading.
    previous: u64,
}

impl Releases {
    fn new(resident: u64) -> Self {
        Self {
            baseline: resident,
            previous: resident,
        }
    }

    /// Whether to release now, given the current resident size.
    fn due(&mut self, resident: u64) -> bool {
        let settled = resident <= self.previous.saturating_add(STILL);
        self.previous = resident;
        self.baseline = self.baseline.min(resident);
        settled && resident >= self.baseline.saturating_add(WORTH_RELEASING)
    }

    /// Records the resident size after a release.
    fn released(&mut self, resident: u64) {
        self.baseline = resident;
        self.previous = resident;
    }
}

/// Runs for the life of the process: releases the heap's free pages after each burst. Does
/// nothing where the resident size cannot be read (no `/proc`).
pub async fn release_after_bursts() {
    let Some(first) = resident_bytes() else {
        return;
    };
    let mut releases = Releases::new(first);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(resident) = resident_bytes() else {
            return;
        };
        if releases.due(resident) {
            // A walk over the allocator's free lists: off the async workers.
            let released = tokio::task::spawn_blocking(release_free_heap)
                .await
                .unwrap_or(false);
            let after = resident_bytes().unwrap_or(resident);
            tracing::debug!(
                released,
                before_mib = resident / (1024 * 1024),
                after_mib = after / (1024 * 1024),
                "gave free heap pages back to the OS after a burst"
            );
            releases.released(after);
        }
    }
}

/// This process's resident size in bytes (`VmRSS` of `/proc/self/status`), `None` where
/// unreadable.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn releases_once_a_large_growth_has_stopped_growing() {
        let mut r = Releases::new(20 * MIB);
        assert!(!r.due(21 * MIB), "small growth");
        assert!(!r.due(200 * MIB), "still growing");
        assert!(!r.due(400 * MIB), "still growing");
        assert!(r.due(402 * MIB), "grown and settled");
        r.released(60 * MIB);
        assert!(!r.due(60 * MIB), "nothing new since the release");
        assert!(!r.due(80 * MIB), "growing again, below the threshold");
        assert!(!r.due(81 * MIB), "settled below the threshold");
        assert!(!r.due(150 * MIB), "growing");
        assert!(r.due(150 * MIB), "a second burst over");
    }

    #[test]
    fn a_release_that_frees_nothing_is_not_repeated() {
        let mut r = Releases::new(20 * MIB);
        assert!(!r.due(300 * MIB));
        assert!(r.due(300 * MIB));
        // Locked pages (lockMode all) stay resident: the size after is the new baseline.
        r.released(300 * MIB);
        for _ in 0..10 {
            assert!(!r.due(300 * MIB));
        }
    }

    #[test]
    fn shrinking_lowers_the_baseline() {
        let mut r = Releases::new(100 * MIB);
        assert!(!r.due(40 * MIB));
        assert!(!r.due(60 * MIB), "growing");
        assert!(
            !r.due(62 * MIB),
            "settled 22 MiB over the lowest reading: not worth it"
        );
        assert!(!r.due(80 * MIB), "growing");
        assert!(r.due(80 * MIB), "40 MiB over the lowest reading, settled");
    }

    #[test]
    fn reads_this_process_resident_size() {
        let rss = resident_bytes().expect("/proc/self/statm");
        assert!(rss > MIB, "{rss}");
    }
}
