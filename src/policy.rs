//! TLSPC policy in the firefly lib: the core's engine and shape rules (re-exported), the TLSPC wire
//! model and the policy cache.

pub mod cache;
pub mod model;

pub use firefly_core::policy::{
    CompiledPolicy, Denial, Evaluation, LeafProfile, Policy, PolicyError, Request, RuleCheck,
    ShapeViolation, engine, pattern, shape, validate_shape,
};
pub use firefly_core::usage;
