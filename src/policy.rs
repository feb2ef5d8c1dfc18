//! TLSPC policy: the wire model, its shape rules, the pure decision engine, and the cache.

pub mod cache;
pub mod engine;
pub mod model;
pub mod pattern;
pub mod shape;
pub mod usage;

pub use engine::{
    CompiledPolicy, Denial, Evaluation, LeafProfile, PolicyError, Request, RuleCheck,
};
pub use shape::{ShapeViolation, validate_shape};
