//! TLSPC policy: the wire model, the pure engine, and the cache.

pub mod cache;
pub mod model;
