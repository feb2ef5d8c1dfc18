//! The TLS Protect Cloud side: TLSPC's wire model, the client, the bootstrap (locked sub-CA key,
//! sub-CA lifecycle, policy refresh) and the policy cache.
//!
//! - [`wire`]: TLSPC objects as the OpenAPI document names them (serde only), and their
//!   conversion into the issuing core's policy type;
//! - [`bootstrap`]: the client, the locked key, the sub-CA lifecycle and the [`bootstrap::Signer`]
//!   handle, which implements the core's [`firefly_core::Signer`];
//! - [`policy_cache`]: the configuration's compiled policies, last-known-good, staleness;
//! - [`crypto`]: the process's one TLS crypto provider (aws-lc-rs).
//!
//! # Must not
//! Know Kubernetes (no kube, no CRDs) or the product's configuration format (the product hands
//! over [`bootstrap::Settings`]), or use `unsafe` outside `bootstrap::locked_key`.

// `unsafe` is confined to `bootstrap::locked_key` (memory locking); the compiler holds us to it.
#![deny(unsafe_code)]

pub mod bootstrap;
pub mod crypto;
pub mod policy_cache;
pub mod wire;
