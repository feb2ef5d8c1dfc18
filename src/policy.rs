//! TLSPC policy: the wire model, its shape rules, the pure decision engine, and the cache.

pub mod cache;
pub mod model;
pub mod pattern;
pub mod shape;
pub mod usage;

pub use shape::{ShapeViolation, validate_shape};
