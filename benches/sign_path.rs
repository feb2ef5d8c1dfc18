//! Sign-path benchmark (one core): the raw P-256 crypto floor against the full path (CSR decode +
//! verify, policy, template, sign, post-sign checks including the leaf signature verify, PEM) for
//! P-256 and RSA-2048 requests, measured in the same run, interleaved, best of several rounds.
//!
//! The floor is CSR verify + leaf sign + leaf verify (DESIGN §6); the old floor (CSR verify + leaf
//! sign, before every leaf's signature was verified) is measured too, for the old ratio.
//! It also prints the per-signature cost of the two ways to sign with a key held in locked pages:
//! the raw `EC_KEY` + `EVP_DigestSign` path `LockedKey` uses, and an aws-lc-rs key pair built from
//! the locked bytes for each signature (its constructors check the key with a scalar multiplication).
//!
//! `cargo bench --bench sign_path` (set SIGN_PATH_ROUND_MS to change the round length).
//!
//! Instruction counts (repeatable on a loaded machine): `SIGN_PATH_PROFILE=floor|floor_old|plain|locked`
//! (or `sign_locked|sign_api|sign_kept`, one P-256 signature each way)
//! with `SIGN_PATH_ITERATIONS=n` runs only that operation n times inside `profiled_loop`, for
//! `valgrind --tool=callgrind --toggle-collect='*profiled_loop*' target/release/deps/sign_path-*`.
//! `plain` signs with an rcgen key pair, `locked` with the production `LockedKey`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use firefly::bootstrap::locked_key::LockedKey;
use firefly::ca::{IssueOptions, LeafRequest, issue};
use firefly::config::LockMode;
use firefly::policy::model::KeyAlgorithm;
use support::csr::{RawCsr, p256, rsa};

const ROUNDS: usize = 5;
const URI: &str = "spiffe://cluster.local/ns/default/sa/sleep";

fn rate(round: Duration, mut op: impl FnMut()) -> f64 {
    // Warm up, then count whole operations in the round.
    for _ in 0..20 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < round {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The profiled region: callgrind collects only inside this function.
#[inline(never)]
fn profiled_loop(iterations: u64, op: &mut dyn FnMut()) {
    for _ in 0..iterations {
        op();
    }
}

fn main() {
    firefly::crypto::install_default_provider();
    let round = Duration::from_millis(
        std::env::var("SIGN_PATH_ROUND_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    );

    // Floor: verify one P-256 signature over a CSR-sized message, sign one certificate-sized message.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .expect("keygen");
    let requester =
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .expect("key");
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .expect("keygen");
    let issuer =
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .expect("key");
    let csr_info = vec![0x5au8; 220];
    let tbs = vec![0xa5u8; 420];
    let csr_sig = requester.sign(&rng, &csr_info).expect("sign");
    let requester_pub = requester.public_key().as_ref().to_vec();
    // The same primitives the sign path uses: parse (validate) the request's key, verify, sign.
    let verify_csr = || {
        let key =
            signature::ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &requester_pub)
                .expect("parse key");
        key.verify_sig(black_box(&csr_info), csr_sig.as_ref())
            .expect("verify");
    };
    let sign_leaf = || issuer.sign(&rng, black_box(&tbs)).expect("sign");
    let mut floor_old = || {
        verify_csr();
        black_box(sign_leaf());
    };
    // The issuer's key parsed once, as the sub-CA keeps it to verify every leaf.
    let issuer_pub = signature::ParsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        issuer.public_key().as_ref(),
    )
    .expect("parse issuer key");
    let mut floor = || {
        verify_csr();
        issuer_pub
            .verify_sig(black_box(&tbs), sign_leaf().as_ref())
            .expect("leaf verify");
    };

    // Full path against a P-256 sub-CA, with the istio policy.
    let pki = support::pki::PkiBuilder::default().build();
    let policy = support::policies::compiled_istio_policy();
    let opts = IssueOptions::default();
    let ec_key = p256();
    let ec_csr = RawCsr::istio(&ec_key, URI).pem(&ec_key);
    let rsa_key = rsa(2048);
    let rsa_csr = RawCsr::istio(&rsa_key, URI).pem(&rsa_key);
    // The production key type: the sub-CA key in locked pages (default lock mode).
    let locked_key = LockedKey::generate(KeyAlgorithm::EcP256, LockMode::KeyPages)
        .expect("locked P-256 key (needs RLIMIT_MEMLOCK >= one page)");
    let locked_pki = support::pki::PkiBuilder::default().build_for_key(Arc::new(locked_key));
    let full_with = |ca: &firefly::ca::SubCa, csr: &str| {
        let req = LeafRequest {
            csr_pem: csr.as_bytes(),
            duration: None,
            usages: None,
            is_ca: false,
            identities_annotation: Some(URI),
            trust_domain: None,
        };
        black_box(issue(ca, &policy, &req, &opts, SystemTime::now()).expect("issued"));
    };
    let full = |csr: &str| full_with(&pki.sub_ca, csr);

    // Per signature, P-256, a leaf-sized message: the two ways to sign with a locked key, and a
    // long-lived aws-lc-rs key pair (what neither may do: keep the key in ordinary heap).
    let locked_p256 = LockedKey::generate(KeyAlgorithm::EcP256, LockMode::KeyPages).expect("key");
    let locked_sign = || {
        use rcgen::SigningKey as _;
        black_box(locked_p256.sign(black_box(&tbs)).expect("sign"));
    };
    let pkcs8_p256 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .expect("keygen");
    let api_sign = || {
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            black_box(pkcs8_p256.as_ref()),
        )
        .expect("key");
        black_box(pair.sign(&rng, black_box(&tbs)).expect("sign"));
    };
    let kept_sign = || {
        black_box(issuer.sign(&rng, black_box(&tbs)).expect("sign"));
    };

    if let Ok(which) = std::env::var("SIGN_PATH_PROFILE") {
        let iterations: u64 = std::env::var("SIGN_PATH_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        match which.as_str() {
            "floor" => profiled_loop(iterations, &mut floor),
            "floor_old" => profiled_loop(iterations, &mut floor_old),
            "sign_locked" => profiled_loop(iterations, &mut { locked_sign }),
            "sign_api" => profiled_loop(iterations, &mut { api_sign }),
            "sign_kept" => profiled_loop(iterations, &mut { kept_sign }),
            "plain" => profiled_loop(iterations, &mut || full(&ec_csr)),
            "locked" => profiled_loop(iterations, &mut || full_with(&locked_pki.sub_ca, &ec_csr)),
            other => {
                panic!(
                    "SIGN_PATH_PROFILE={other}: expected floor, floor_old, plain, locked, sign_locked, sign_api or sign_kept"
                )
            }
        }
        println!("profiled {which} x {iterations}");
        return;
    }

    let (mut best_floor, mut best_ec, mut best_rsa, mut best_locked) = (0f64, 0f64, 0f64, 0f64);
    let mut best_floor_old = 0f64;
    let (mut best_locked_sign, mut best_api_sign, mut best_kept_sign) = (0f64, 0f64, 0f64);
    for _ in 0..ROUNDS {
        best_locked_sign = best_locked_sign.max(rate(round, locked_sign));
        best_api_sign = best_api_sign.max(rate(round, api_sign));
        best_kept_sign = best_kept_sign.max(rate(round, kept_sign));
        best_floor = best_floor.max(rate(round, &mut floor));
        best_floor_old = best_floor_old.max(rate(round, &mut floor_old));
        best_ec = best_ec.max(rate(round, || full(&ec_csr)));
        best_locked = best_locked.max(rate(round, || full_with(&locked_pki.sub_ca, &ec_csr)));
        best_rsa = best_rsa.max(rate(round, || full(&rsa_csr)));
    }
    // Where the time goes (P-256): each stage alone, in microseconds per call.
    let per_call = |ops: f64| 1e6 / ops;
    let decoded = firefly::csr::decode_pem(ec_csr.as_bytes()).expect("decodes");
    let leaf_req = LeafRequest {
        csr_pem: ec_csr.as_bytes(),
        duration: None,
        usages: None,
        is_ca: false,
        identities_annotation: Some(URI),
        trust_domain: None,
    };
    let profile = firefly::ca::decide(&policy, &decoded, &leaf_req, &opts).expect("allowed");
    let decode_us = per_call(rate(round, || {
        black_box(firefly::csr::decode_pem(black_box(ec_csr.as_bytes())).expect("decodes"));
    }));
    let decide_us = per_call(rate(round, || {
        black_box(firefly::ca::decide(&policy, &decoded, &leaf_req, &opts).expect("allowed"));
    }));
    let sign_us = per_call(rate(round, || {
        let issued = firefly::ca::sign_profile(
            &pki.sub_ca,
            &decoded,
            profile.clone(),
            &opts,
            SystemTime::now(),
        );
        black_box(issued.expect("signed"));
    }));

    let (locked_sign_us, api_sign_us, kept_sign_us) = (
        per_call(best_locked_sign),
        per_call(best_api_sign),
        per_call(best_kept_sign),
    );
    println!(
        "sign_path (one core, best of {ROUNDS} rounds of {} ms)",
        round.as_millis()
    );
    println!("  floor: CSR verify + leaf sign + leaf verify : {best_floor:>10.0} ops/s");
    println!("  old floor: CSR verify + leaf sign           : {best_floor_old:>10.0} ops/s");
    println!("  full sign path, P-256 CSR         : {best_ec:>10.0} ops/s");
    println!("  full sign path, RSA-2048 CSR      : {best_rsa:>10.0} ops/s");
    println!("  full sign path, P-256, LockedKey  : {best_locked:>10.0} ops/s");
    println!(
        "  ratio full/floor (P-256)          : {:>10.3}  (goal >= 0.85)",
        best_ec / best_floor
    );
    println!(
        "  ratio full/floor (RSA-2048)       : {:>10.3}",
        best_rsa / best_floor
    );
    println!(
        "  ratio full/floor (P-256, LockedKey): {:>9.3}  (production key type)",
        best_locked / best_floor
    );
    println!(
        "  old ratios (old floor)            : P-256 {:.3}, RSA-2048 {:.3}, P-256 LockedKey {:.3}",
        best_ec / best_floor_old,
        best_rsa / best_floor_old,
        best_locked / best_floor_old
    );
    println!(
        "  P-256 stages (us/call): decode+verify {decode_us:.1}, policy {decide_us:.1}, \
         template+sign+post-sign check (with leaf verify)+PEM {sign_us:.1}; floor {:.1}, old floor {:.1}",
        per_call(best_floor),
        per_call(best_floor_old)
    );
    println!(
        "  P-256 signature (us): LockedKey raw EC_KEY + EVP_DigestSign {locked_sign_us:.1}, \
         aws-lc-rs key pair built per signature {api_sign_us:.1} ({:+.0}%), long-lived aws-lc-rs key pair {kept_sign_us:.1}",
        (api_sign_us / locked_sign_us - 1.0) * 100.0
    );
}
