//! Policy as the firefly lib's callers name it: the core's engine and shape rules, TLSPC's wire
//! model and the policy cache, all re-exported from the crates that own them.

pub use firefly_core::policy::{
    CompiledPolicy, Denial, Evaluation, LeafProfile, Policy, PolicyError, Request, RuleCheck,
    ShapeViolation, engine, pattern, shape, validate_shape,
};
pub use firefly_core::usage;
pub use firefly_tlspc::policy_cache as cache;
pub use firefly_tlspc::wire::policy as model;
