//! Gives the memory of a finished burst back to the OS.
//!
//! A backlog is listed, decided and dropped in seconds: the requests leave the caches, but the
//! allocators keep freed memory mapped (mimalloc, the Rust heap, purges a free page only after a
//! delay and only when called again; glibc, under the C code, keeps the freed middle of its heap),
//! so the process could stay at its peak (hundreds of MiB after a 100,000-request backlog). [`release_after_bursts`] reads the
//! resident size and the CPU time every few seconds; when the process has gone quiet (the last
//! interval used little CPU, or a quarter or less of its busiest interval since the last release:
//! the burst is over, even if lighter traffic goes on) while it is well above the size it had
//! after the last release, it asks the allocator to return its free pages
//! ([`firefly_tlspc::bootstrap::locked_key::release_free_heap`]). Under steady load nothing is
//! released: what is resident is in use.
//!
//! mimalloc keeps a heap per thread, and a forced collect reaches only the calling thread's pages:
//! what a burst left in the async workers' heaps (blocks other threads freed into their pages,
//! purges scheduled in segments still in use) stays resident until each worker collects its own.
//! So after each release every worker gives its own heap's free pages back the next time it parks
//! or wakes ([`on_worker_park`], installed by `main` as the runtime's park and unpark hook).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use firefly_tlspc::bootstrap::locked_key::{release_free_heap, release_thread_heap};

/// How often the resident size and CPU time are read.
const TICK: Duration = Duration::from_secs(5);
/// Growth over the size after the last release that is worth a release.
const WORTH_RELEASING: u64 = 8 * 1024 * 1024;
/// CPU time over one [`TICK`] under which the process is quiet (10 % of a core).
const QUIET: Duration = Duration::from_millis(500);
/// An interval that used at most this fraction (1/n) of the busiest one since the last release is
/// quiet too: a burst has ended even if lighter traffic goes on.
const BURST_OVER_DIVISOR: u32 = 4;

/// One reading of the process.
#[derive(Clone, Copy, Debug)]
struct Reading {
    /// Resident bytes.
    resident: u64,
    /// CPU time used since the process started (user + system, all threads).
    cpu: Duration,
}

/// When to release, from successive readings.
#[derive(Debug)]
struct Releases {
    /// The resident size after the last release (or the lowest seen since).
    baseline: u64,
    /// The CPU time at the previous reading.
    cpu: Duration,
    /// The most CPU time one interval used since the last release.
    busiest: Duration,
}

impl Releases {
    fn new(first: Reading) -> Self {
        Self {
            baseline: first.resident,
            cpu: first.cpu,
            busiest: Duration::ZERO,
        }
    }

    /// Whether to release now: the process was quiet since the previous reading and is well
    /// above its size after the last release.
    fn due(&mut self, now: Reading) -> bool {
        let used = now.cpu.saturating_sub(self.cpu);
        let quiet = used <= QUIET.max(self.busiest / BURST_OVER_DIVISOR);
        self.busiest = self.busiest.max(used);
        self.cpu = now.cpu;
        self.baseline = self.baseline.min(now.resident);
        quiet && now.resident >= self.baseline.saturating_add(WORTH_RELEASING)
    }

    /// Records the resident size after a release: a release that freed nothing (locked pages)
    /// is not repeated until the process grows again.
    fn released(&mut self, resident: u64) {
        self.baseline = resident;
        self.busiest = Duration::ZERO;
    }
}

/// Runs for the life of the process: releases the heap's free pages after each burst. Does
/// nothing where `/proc/self` cannot be read.
pub async fn release_after_bursts() {
    let Some(first) = read() else {
        return;
    };
    let mut releases = Releases::new(first);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(now) = read() else {
            return;
        };
        if releases.due(now) {
            let released = release().await;
            let after = read().map_or(now.resident, |r| r.resident);
            tracing::debug!(
                released,
                before_mib = now.resident / (1024 * 1024),
                after_mib = after / (1024 * 1024),
                "gave free heap pages back to the OS after a burst"
            );
            releases.released(after);
        }
    }
}

/// How many releases there have been: a worker that has not released its own heap since the
/// last one does so when it next parks or wakes.
static RELEASES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The [`RELEASES`] count this thread last released its heap for.
    static RELEASED_FOR: Cell<u64> = const { Cell::new(0) };
}

/// The runtime's park and unpark hook: gives this worker's free heap pages back once per
/// release. Costs an atomic load when there is nothing to do.
pub fn on_worker_park() {
    let releases = RELEASES.load(Ordering::Relaxed);
    if RELEASED_FOR.get() != releases {
        RELEASED_FOR.set(releases);
        release_thread_heap();
    }
}

/// Gives free heap pages back: glibc's and what mimalloc can reach from any thread (abandoned
/// segments, its arenas) from a blocking thread (a walk over the allocator's free lists, off the
/// async workers), then each worker's own. Returns whether glibc released anything.
async fn release() -> bool {
    let released = tokio::task::spawn_blocking(release_free_heap)
        .await
        .unwrap_or(false);
    release_worker_heaps().await;
    released
}

/// Has each worker give its own heap's free pages back ([`on_worker_park`]): a forced collect
/// visits only the calling thread's pages (blocks other threads freed into them wait there until
/// their owner collects) and purges only the segments those pages are in.
async fn release_worker_heaps() {
    RELEASES.fetch_add(1, Ordering::Relaxed);
    // Idle workers wake and park again, running the hook. A task a worker spawns waits in its
    // own LIFO slot without waking anyone; the next one pushes it to the shared queue and wakes
    // an idle worker to steal it: spawn them all before awaiting any.
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let nudges: Vec<_> = (0..workers * 2).map(|_| tokio::spawn(async {})).collect();
    for nudge in nudges {
        let _ = nudge.await;
    }
}

fn read() -> Option<Reading> {
    Some(Reading {
        resident: resident_bytes()?,
        cpu: cpu_time()?,
    })
}

/// This process's resident size in bytes (`VmRSS` of `/proc/self/status`).
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

/// Clock ticks per second of `/proc/self/stat`'s times (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

/// This process's CPU time, user + system over all its threads (`/proc/self/stat` fields 14 and
/// 15).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis,
    // where field 3 is the first.
    let mut after_name = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = after_name.nth(11)?.parse().ok()?;
    let stime: u64 = after_name.next()?.parse().ok()?;
    Some(Duration::from_millis(
        utime.saturating_add(stime).saturating_mul(1000 / USER_HZ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn at(resident_mib: u64, cpu_ms: u64) -> Reading {
        Reading {
            resident: resident_mib * MIB,
            cpu: Duration::from_millis(cpu_ms),
        }
    }

    #[test]
    fn releases_once_a_large_growth_is_followed_by_a_quiet_interval() {
        let mut r = Releases::new(at(20, 0));
        assert!(!r.due(at(21, 100)), "quiet, small growth");
        assert!(!r.due(at(200, 5_100)), "busy");
        assert!(!r.due(at(400, 10_000)), "busy");
        assert!(
            !r.due(at(400, 15_000)),
            "busy, even though the size stopped growing"
        );
        assert!(
            r.due(at(400, 15_300)),
            "quiet and 380 MiB over the baseline"
        );
        r.released(60 * MIB);
        assert!(!r.due(at(60, 15_300)), "nothing new since the release");
        assert!(!r.due(at(80, 16_000)), "busy again");
        assert!(
            !r.due(at(66, 16_000)),
            "quiet, 6 MiB over the baseline: not worth it"
        );
        assert!(!r.due(at(150, 20_000)), "busy");
        assert!(r.due(at(150, 20_400)), "a second burst over");
    }

    #[test]
    fn a_burst_followed_by_lighter_traffic_is_released() {
        let mut r = Releases::new(at(20, 0));
        // 100k backlog: both cores busy for a while.
        assert!(!r.due(at(200, 9_000)));
        assert!(!r.due(at(440, 18_000)));
        // Then 500 requests/s go on: 0.75 s of CPU per interval, not "quiet" by the floor, but a
        // twelfth of the burst's.
        assert!(r.due(at(440, 18_750)), "the burst is over");
        r.released(70 * MIB);
        // The same lighter traffic, steady: nothing to release.
        for i in 1..10 {
            assert!(!r.due(at(75, 18_750 + i * 750)));
        }
    }

    #[test]
    fn steady_load_releases_nothing_however_large() {
        let mut r = Releases::new(at(20, 0));
        for i in 1..20 {
            assert!(!r.due(at(300, i * 2_000)), "interval {i}");
        }
    }

    #[test]
    fn a_release_that_frees_nothing_is_not_repeated() {
        let mut r = Releases::new(at(20, 0));
        assert!(r.due(at(300, 0)));
        // Locked pages (lockMode all) stay resident: the size after is the new baseline.
        r.released(300 * MIB);
        for _ in 0..10 {
            assert!(!r.due(at(300, 0)));
        }
    }

    #[test]
    fn the_baseline_follows_the_lowest_size_seen() {
        let mut r = Releases::new(at(100, 0));
        assert!(!r.due(at(40, 0)));
        assert!(
            !r.due(at(46, 0)),
            "6 MiB over the lowest reading: not worth it"
        );
        assert!(r.due(at(58, 0)), "18 MiB over the lowest reading");
    }

    /// A 10,000-request burst grows the controller by 17-18 MiB (`e2e --bench rss`); it is released.
    #[test]
    fn a_ten_thousand_request_burst_is_worth_releasing() {
        let mut r = Releases::new(at(22, 0));
        assert!(!r.due(at(40, 3_000)), "busy");
        assert!(r.due(at(40, 3_100)), "quiet, 18 MiB over the baseline");
    }

    /// Blocks a worker allocated and another thread freed stay in the worker's mimalloc heap
    /// until the worker collects it: a release must reach the workers themselves.
    #[test]
    fn a_release_reaches_the_heap_of_the_worker_that_allocated_the_memory() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .on_thread_park(on_worker_park)
            .on_thread_unpark(on_worker_park)
            .build()
            .unwrap();
        runtime.block_on(async {
            // 200 MB of small blocks allocated on the worker and freed here (as tasks move
            // between workers), all but one in 1,024.
            let blocks = tokio::spawn(async {
                (0..200_000_u32)
                    .map(|i| vec![i as u8; 1000])
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap();
            let kept: Vec<Vec<u8>> = blocks.into_iter().step_by(1024).collect();
            let before = read().expect("/proc/self").resident;
            release_worker_heaps().await;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let mut after = before;
            while std::time::Instant::now() < deadline {
                after = read().expect("/proc/self").resident;
                if after + 100 * MIB < before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(
                after + 100 * MIB < before,
                "resident {} MiB before the release, {} MiB 5 s after",
                before / MIB,
                after / MIB
            );
            assert!(
                kept.iter()
                    .enumerate()
                    .all(|(i, b)| b[999] == (i * 1024) as u8)
            );
        });
    }

    #[test]
    fn reads_this_process_resident_size_and_cpu_time() {
        let first = read().expect("/proc/self");
        assert!(first.resident > MIB, "{first:?}");
        // Spinning shows as CPU time within a few clock ticks, however loaded the machine.
        let t = std::time::Instant::now();
        let mut x = 0_u64;
        let mut later = first;
        while later.cpu <= first.cpu && t.elapsed() < Duration::from_secs(10) {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            later = read().expect("/proc/self");
        }
        assert!(
            later.cpu > first.cpu,
            "10 s of spinning did not show as CPU time: {first:?} then {later:?}"
        );
    }
}
