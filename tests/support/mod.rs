//! Shared test support for the core suites (tests/core_*.rs): a DER encoder and CSR builder that can
//! produce both well-formed and deliberately broken requests, a real CA hierarchy built with rcgen,
//! policy builders, and the independent verifiers (openssl, Python cryptography via verify_chain.py).
//!
//! Other suites may use it with `#[path = "support/mod.rs"] mod support;`.
#![allow(dead_code)]

pub mod corpus;
pub mod csr;
pub mod der;
pub mod pki;
pub mod policies;
pub mod verifiers;
