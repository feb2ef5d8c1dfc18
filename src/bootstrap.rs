//! Bootstrap: the locked sub-CA key, the TLSPC client and the sub-CA lifecycle; the only module that talks to TLSPC.

pub mod client;
pub mod locked_key;
pub mod subca;

use std::time::SystemTime;

/// The wall clock, injected so that lifecycle decisions can be tested at any instant.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
