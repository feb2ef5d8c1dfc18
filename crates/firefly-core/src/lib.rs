//! The issuing core: decides and signs one certificate request, whichever front door it came
//! through; performs no I/O.
//!
//! Where each step is decided:
//! - [`issuance`]: the front-door seam ([`IssuanceRequest`] in → [`Outcome`] out), authorization
//!   by scope, and the [`Signer`] trait the bootstrap implements;
//! - [`csr`]: decoding and verifying a PKCS#10 request, or a bare public key;
//! - [`spiffe`]: SPIFFE ID and trust-domain rules;
//! - [`policy`]: the core's policy type, its shape rules and the decision engine;
//! - [`ca`]: leaf template, signing with the sub-CA, post-sign validation, chain;
//! - [`key`], [`usage`], [`duration`], [`clock`], [`util`]: the vocabulary they share.
//!
//! # Must not
//! Depend on tokio, kube, HTTP crates or any upstream's wire types (`cargo tree -p firefly-core
//! -e normal` shows none), read files, the network or the environment, or use `unsafe`.

#![forbid(unsafe_code)]

pub mod ca;
pub mod clock;
pub mod csr;
pub mod duration;
pub mod issuance;
pub mod key;
pub mod policy;
pub mod spiffe;
pub mod usage;
pub mod util;
pub mod yaml;

pub use clock::{Clock, SystemClock};
pub use issuance::{
    AssertedIdentity, AuditSettings, IdentityNamespaces, IssuanceRequest, Outcome, Readiness,
    Refusal, Scope, Signer, Subject,
};
pub use key::KeyAlgorithm;
