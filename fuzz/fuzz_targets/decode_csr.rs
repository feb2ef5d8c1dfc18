//! Fuzzes request decoding: PEM and DER entry points, then the policy decision on whatever decodes.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use firefly::csr::{decode_der, decode_pem};
use firefly::policy::{CompiledPolicy, Request};
use libfuzzer_sys::fuzz_target;

fn policy() -> &'static CompiledPolicy {
    static POLICY: OnceLock<CompiledPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let doc: firefly::policy::model::PolicyInformation = serde_json::from_slice(include_bytes!(
            "../../examples/policies/istio-workloads.json"
        ))
        .expect("example policy parses");
        CompiledPolicy::compile(&doc.to_policy()).expect("example policy compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_pem(data);
    if let Ok(csr) = decode_der(data) {
        let req = Request {
            csr: &csr,
            duration: None,
            usages: None,
            is_ca: false,
            identities_annotation: None,
            trust_domain: None,
            minimum_duration: Duration::from_secs(60),
        };
        let evaluation = policy().evaluate(&req, true);
        let _ = evaluation.into_result();
    }
});
