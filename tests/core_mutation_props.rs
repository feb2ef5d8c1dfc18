//! Mutation property tests: a valid istio-shaped request and a valid policy document, mutated at
//! random (byte flips, truncation, insertion), never make the decoder, the shape rules, the compiler
//! or the engine panic; whatever still decodes is judged without panicking. The cargo-fuzz targets
//! in fuzz/ explore the same entry points with coverage guidance.

use std::sync::OnceLock;
use std::time::Duration;

use firefly::csr::{decode_der, decode_pem};
use firefly::policy::model::PolicyInformation;
use firefly::policy::{CompiledPolicy, Request, validate_shape};
use proptest::prelude::*;
use support::csr::{RawCsr, p256, to_pem};

fn valid_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| {
        let key = p256();
        RawCsr::istio(&key, "spiffe://cluster.local/ns/default/sa/sleep").build(&key)
    })
}

fn policy() -> &'static CompiledPolicy {
    static P: OnceLock<CompiledPolicy> = OnceLock::new();
    P.get_or_init(support::policies::compiled_istio_policy)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for m in mutations {
        if out.is_empty() {
            break;
        }
        match *m {
            Mutation::Flip(i, b) => {
                let i = i % out.len();
                out[i] ^= b.max(1);
            }
            Mutation::Truncate(i) => out.truncate(i % out.len()),
            Mutation::Insert(i, b) => out.insert(i % (out.len() + 1), b),
        }
    }
    out
}

fn judge(der: &[u8]) {
    if let Ok(csr) = decode_der(der) {
        let req = Request {
            csr: &csr,
            duration: Some("1h"),
            usages: None,
            is_ca: false,
            identities_annotation: None,
            trust_domain: None,
            minimum_duration: Duration::from_secs(60),
        };
        let _ = policy().evaluate(&req, true).into_result();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_requests_never_panic(mutations in prop::collection::vec(mutation(), 1..6)) {
        let der = apply(valid_der(), &mutations);
        judge(&der);
        let _ = decode_pem(to_pem(&der).as_bytes());
    }

    #[test]
    fn mutated_policy_documents_never_panic(mutations in prop::collection::vec(mutation(), 1..6)) {
        let bytes = apply(support::policies::ISTIO_POLICY_JSON.as_bytes(), &mutations);
        if let Ok(doc) = serde_json::from_slice::<PolicyInformation>(&bytes) {
            let shape = validate_shape(&doc.to_policy());
            let compiled = CompiledPolicy::compile(&doc.to_policy());
            prop_assert_eq!(shape.is_ok(), compiled.is_ok(), "validate_shape and compile disagree");
        }
    }
}

#[test]
fn unmutated_request_decodes() {
    // Guards the property tests above against testing only garbage.
    assert!(decode_der(valid_der()).is_ok());
}
