//! Firefly in Rust: a cert-manager external issuer signing SPIFFE X509-SVIDs with an ephemeral,
//! memory-locked sub-CA under a TLS Protect Cloud policy.
//!
//! The crate is laid out so that "where is X decided?" is answered by the tree:
//! the pure issuing core ([`spiffe`], [`csr`], [`duration`], [`policy`], [`ca`]) performs no I/O;
//! [`bootstrap`] owns the locked key, the TLSPC client and the sub-CA lifecycle; [`issuer`] owns the
//! CertificateRequest reconciler; [`tlspc_mock`] is the mock service.

// `unsafe` is confined to `bootstrap::locked_key` (memory locking); the compiler holds us to it.
#![deny(unsafe_code)]

pub mod admin;
pub mod bootstrap;
pub mod config;
pub mod crd;
pub mod crypto;
pub mod issuer;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod policy_check;
pub mod run;
pub mod tlspc;
pub mod tlspc_mock;

pub use firefly_core::{ca, csr, duration, spiffe};
