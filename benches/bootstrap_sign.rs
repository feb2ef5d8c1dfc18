//! Cost of signing through the locked sub-CA key (rcgen `SigningKey` over locked PKCS#8 bytes,
//! an AWS-LC key object built per signature) against a plain, long-lived aws-lc-rs key pair, and
//! against the raw P-256 sign+verify floor of the issuing path. Prints figures and ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey,
};
use firefly::bootstrap::locked_key::LockedKey;
use firefly::config::LockMode;
use firefly::policy::model::KeyAlgorithm;
use rcgen::SigningKey as _;

const MESSAGE: &[u8] = &[0x5a; 600]; // about the size of a leaf's TBSCertificate

fn per_op(iterations: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let rng = SystemRandom::new();
    println!(
        "locked-key sign cost (per signature, {} byte message)",
        MESSAGE.len()
    );

    // P-256: the default sub-CA algorithm, and the floor the issuing path is measured against.
    let raw = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).expect("keygen");
    let locked =
        LockedKey::generate(KeyAlgorithm::EcP256, LockMode::KeyPages).expect("locked keygen");
    let n = 5000;
    let raw_sign = per_op(n, || {
        black_box(raw.sign(&rng, black_box(MESSAGE)).expect("sign"));
    });
    let locked_sign = per_op(n, || {
        black_box(locked.sign(black_box(MESSAGE)).expect("sign"));
    });
    let sig = raw.sign(&rng, MESSAGE).expect("sign");
    let verifier = UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        raw.public_key().as_ref().to_vec(),
    );
    let verify = per_op(n, || {
        verifier
            .verify(black_box(MESSAGE), sig.as_ref())
            .expect("verify");
    });
    let floor = raw_sign + verify;
    let with_locked = locked_sign + verify;
    println!("P-256  plain EcdsaKeyPair sign : {:8.1} us", us(raw_sign));
    println!(
        "P-256  LockedKey sign          : {:8.1} us   ratio plain/locked = {:.2}",
        us(locked_sign),
        us(raw_sign) / us(locked_sign)
    );
    println!("P-256  verify                  : {:8.1} us", us(verify));
    println!(
        "P-256  floor (plain sign+verify) / (locked sign+verify) = {:.2}   (the issuing path's ceiling with this key)",
        us(floor) / us(with_locked)
    );

    let raw384 =
        EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_ASN1_SIGNING).expect("keygen");
    let locked384 = LockedKey::generate(KeyAlgorithm::EcP384, LockMode::KeyPages).expect("keygen");
    let a = per_op(1000, || {
        black_box(raw384.sign(&rng, MESSAGE).expect("sign"));
    });
    let b = per_op(1000, || {
        black_box(locked384.sign(MESSAGE).expect("sign"));
    });
    println!(
        "P-384  plain {:8.1} us  locked {:8.1} us  ratio {:.2}",
        us(a),
        us(b),
        us(a) / us(b)
    );

    let raw_ed = Ed25519KeyPair::generate().expect("keygen");
    let locked_ed =
        LockedKey::generate(KeyAlgorithm::EcEd25519, LockMode::KeyPages).expect("keygen");
    let a = per_op(5000, || {
        black_box(raw_ed.sign(MESSAGE));
    });
    let b = per_op(5000, || {
        black_box(locked_ed.sign(MESSAGE).expect("sign"));
    });
    println!(
        "Ed25519 plain {:8.1} us  locked {:8.1} us  ratio {:.2}",
        us(a),
        us(b),
        us(a) / us(b)
    );

    let raw_rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("keygen");
    let locked_rsa =
        LockedKey::generate(KeyAlgorithm::Rsa2048, LockMode::KeyPages).expect("keygen");
    let mut out = vec![0; raw_rsa.public_modulus_len()];
    let a = per_op(300, || {
        raw_rsa
            .sign(&signature::RSA_PKCS1_SHA256, &rng, MESSAGE, &mut out)
            .expect("sign");
    });
    let b = per_op(300, || {
        black_box(locked_rsa.sign(MESSAGE).expect("sign"));
    });
    println!(
        "RSA-2048 plain {:8.1} us  locked {:8.1} us  ratio {:.2}",
        us(a),
        us(b),
        us(a) / us(b)
    );
}
