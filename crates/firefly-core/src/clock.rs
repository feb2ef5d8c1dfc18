//! The one clock type: wall-clock time injected into everything that reads it, so tests and the
//! mock can move it; performs no I/O.

use std::time::SystemTime;

/// A source of wall-clock time.
///
/// Every closure `Fn() -> SystemTime` is a clock, so a test can pass `|| fixed` where a clock is
/// wanted.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl<F> Clock for F
where
    F: Fn() -> SystemTime + Send + Sync + 'static,
{
    fn now(&self) -> SystemTime {
        self()
    }
}
