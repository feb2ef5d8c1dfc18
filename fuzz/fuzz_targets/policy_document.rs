//! Fuzzes policy-document parsing: JSON → PolicyInformation → shape rules → compiled policy → a
//! decision on a fixed istio-shaped request.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use firefly::csr::{CertificateRequest, decode_pem};
use firefly::policy::model::PolicyInformation;
use firefly::policy::{CompiledPolicy, Request, validate_shape};
use libfuzzer_sys::fuzz_target;

fn request() -> &'static CertificateRequest {
    static CSR: OnceLock<CertificateRequest> = OnceLock::new();
    CSR.get_or_init(|| {
        decode_pem(include_bytes!(
            "../../examples/policies/istio-workload-p256.csr.pem"
        ))
        .expect("example CSR decodes")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<PolicyInformation>(data) else {
        return;
    };
    let shape = validate_shape(&doc.to_policy());
    match CompiledPolicy::compile(&doc.to_policy()) {
        Ok(policy) => {
            assert!(
                shape.is_ok(),
                "compile accepted a policy validate_shape refused"
            );
            let _ = policy.warnings();
            for duration in [None, Some("1h"), Some("-5m"), Some("2562047h")] {
                let req = Request {
                    csr: request(),
                    duration,
                    usages: None,
                    is_ca: false,
                    identities_annotation: Some("spiffe://cluster.local/ns/default/sa/sleep"),
                    trust_domain: None,
                    minimum_duration: Duration::from_secs(60),
                };
                let _ = policy.evaluate(&req, true).into_result();
            }
        }
        Err(_) => assert!(
            shape.is_err(),
            "compile refused a policy validate_shape accepted"
        ),
    }
});
