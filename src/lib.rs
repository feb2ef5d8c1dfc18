//! Firefly in Rust: a cert-manager external issuer signing SPIFFE X509-SVIDs with an ephemeral,
//! memory-locked sub-CA under a TLS Protect Cloud policy.
//!
//! This crate is the product's Kubernetes side and its binary: the CertificateRequest front door
//! ([`issuer`]), the process wiring ([`run`]), the admin server, metrics, leader election, the
//! configuration and the CRDs. The rest lives in workspace crates whose boundaries the compiler
//! enforces, re-exported here under their old paths:
//! - `firefly-core` ([`ca`], [`csr`], [`duration`], [`spiffe`], [`policy`]'s engine): the pure
//!   issuing core, no I/O;
//! - `firefly-tlspc` ([`bootstrap`], [`tlspc`], [`policy`]'s cache, [`crypto`]): TLSPC's wire model,
//!   client, bootstrap and locked key;
//! - `tlspc-mock` ([`tlspc_mock`]): the mock service behind `firefly tlspc-mock`.

// No `unsafe` here: the only `unsafe` is `firefly_tlspc::bootstrap::locked_key` (memory locking).
#![forbid(unsafe_code)]

// Unit tests allocate through the allocator `firefly` runs with (mimalloc, per-thread heaps: see
// `heap`).
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: firefly_tlspc::bootstrap::locked_key::Allocator =
    firefly_tlspc::bootstrap::locked_key::Allocator;

pub mod admin;
pub mod bootstrap;
pub mod config;
pub mod crd;
pub mod events;
pub mod heap;
pub mod issuer;
pub mod kube_csr;
pub mod leader;
mod lean_meta;
pub mod metrics;
pub mod pod_certs;
pub mod policy;
pub mod policy_check;
mod queue;
pub mod rbac;
pub mod run;
pub mod trust_bundle;

pub use firefly_core::{ca, csr, duration, spiffe};
pub use firefly_tlspc::crypto;
pub use firefly_tlspc::wire as tlspc;
pub use tlspc_mock;
