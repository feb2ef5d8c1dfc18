//! Policy documents for tests, written as the JSON an administrator would put in TLSPC.

use firefly::policy::model::PolicyInformation;

/// The istio workload policy: URI SAN required (one, in cluster.local), everything else forbidden
/// or ignored, 1 hour, RSA-2048/P-256.
pub const ISTIO_POLICY_JSON: &str = r#"{
  "name": "istio-workloads",
  "validityPeriod": "PT1H",
  "subject": {
    "commonName": {"type": "FORBIDDEN", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "organization": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "organizationalUnit": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "locality": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "stateOrProvince": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "country": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0}
  },
  "sans": {
    "dnsNames": {"type": "FORBIDDEN", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "ipAddresses": {"type": "FORBIDDEN", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "rfc822Names": {"type": "FORBIDDEN", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "uniformResourceIdentifiers": {"type": "REQUIRED", "allowedValues": ["^spiffe://cluster\\.local/ns/.*/sa/.*"], "defaultValues": [], "minOccurrences": 1, "maxOccurrences": 1}
  },
  "keyUsages": ["digitalSignature", "keyEncipherment"],
  "extendedKeyUsages": ["SERVER_AUTH", "CLIENT_AUTH"],
  "keyAlgorithm": {"allowedValues": ["RSA_2048", "EC_P256", "EC_P384", "EC_ED25519", "RSA_3072", "RSA_4096"], "defaultValue": "EC_P256"}
}"#;

pub fn istio_policy() -> PolicyInformation {
    serde_json::from_str(ISTIO_POLICY_JSON).expect("istio policy JSON")
}

pub fn compiled_istio_policy() -> firefly::policy::CompiledPolicy {
    firefly::policy::CompiledPolicy::compile(&istio_policy().to_policy())
        .expect("istio policy compiles")
}
