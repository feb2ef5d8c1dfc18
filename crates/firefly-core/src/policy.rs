//! Issuance policy: the core's policy type, its shape rules and the pure decision engine; performs
//! no I/O and knows no upstream's wire format (upstreams convert into [`model::Policy`]).

pub mod engine;
pub mod field;
pub mod model;
pub mod outcome;
pub mod pattern;
pub mod shape;

pub use engine::{
    CompiledPolicy, Denial, Evaluation, LeafProfile, PolicyError, Request, RuleCheck,
};
pub use model::Policy;
pub use shape::{ShapeViolation, validate_shape};
