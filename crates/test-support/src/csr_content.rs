//! Structure-aware CSR content from arbitrary bytes, for the `csr_content` fuzz target
//! (`fuzz/fuzz_targets/csr_content.rs`), the replay of its kept corpus (`tests/fuzz_regressions.rs`)
//! and the mutation property tests: the bytes choose the subject attributes, SANs of every type
//! (SPIFFE IDs assembled from parts among them), key usages, extended key usages, basic
//! constraints, other extensions, the key type, the request's knobs and one of a few policies.
//! The request is signed with a fixed key of the chosen type, so the signature check passes and
//! the content reaches the SPIFFE rules, the policy decision, the leaf template, the signature and
//! the post-sign validation ([`exercise`]). Performs no I/O.

use std::str::FromStr as _;
use std::sync::OnceLock;
use std::time::SystemTime;

use firefly::ca::{IssueError, IssueOptions, LeafRequest};
use firefly::policy::{CompiledPolicy, Request};
use firefly::spiffe::{SpiffeId, TrustDomain};
use rcgen::{KeyPair, PublicKeyData as _};

use crate::csr::*;
use crate::der::*;

/// The fixed signing keys, one per key type the policies name (PKCS#8, made once with openssl for
/// these tests; they sign nothing but test requests).
const KEY_PEMS: [&str; 4] = [
    include_str!("../keys/p256.pem"),
    include_str!("../keys/rsa2048.pem"),
    include_str!("../keys/p384.pem"),
    include_str!("../keys/ed25519.pem"),
];

/// The fixed request keys, parsed once.
pub fn fixed_keys() -> &'static [KeyPair] {
    static KEYS: OnceLock<Vec<KeyPair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        KEY_PEMS
            .iter()
            .map(|pem| KeyPair::from_pem(pem).expect("checked-in test key parses"))
            .collect()
    })
}

/// The fixed P-256 request key (the first of [`fixed_keys`]).
pub fn fixed_p256() -> &'static KeyPair {
    &fixed_keys()[0]
}

/// Everything the exercise holds fixed: keys, a sub-CA, the policies to choose from.
struct Fixture {
    pki: crate::pki::TestPki,
    policies: Vec<CompiledPolicy>,
    trust_domain: TrustDomain,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        firefly::crypto::install_default_provider();
        Fixture {
            pki: crate::pki::PkiBuilder::default().build(),
            policies: POLICIES
                .iter()
                .map(|json| {
                    let doc: firefly::policy::model::PolicyInformation =
                        serde_json::from_str(json).expect("fixed policy parses");
                    CompiledPolicy::compile(&doc.to_policy()).expect("fixed policy compiles")
                })
                .collect(),
            trust_domain: TrustDomain::from_str("cluster.local").expect("trust domain"),
        }
    })
}

/// The istio policy, a serving-certificate policy (DNS and IP allowed, subject fields allowed),
/// and a permissive one (every SAN type optional, any value, long validity).
const POLICIES: [&str; 3] = [
    crate::policies::ISTIO_POLICY_JSON,
    r#"{
  "name": "serving",
  "validityPeriod": "P1D",
  "subject": {
    "commonName": {"type": "OPTIONAL", "allowedValues": ["^.*\\.svc"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 1},
    "organization": {"type": "OPTIONAL", "allowedValues": ["Example"], "defaultValues": ["Example"], "minOccurrences": 0, "maxOccurrences": 1},
    "organizationalUnit": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "locality": {"type": "FORBIDDEN", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "stateOrProvince": {"type": "FORBIDDEN", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "country": {"type": "OPTIONAL", "allowedValues": ["US", "GB"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 1}
  },
  "sans": {
    "dnsNames": {"type": "REQUIRED", "allowedValues": ["^.*\\.svc\\.cluster\\.local", "*.example.com"], "defaultValues": [], "minOccurrences": 1, "maxOccurrences": 4},
    "ipAddresses": {"type": "OPTIONAL", "allowedValues": ["10.0.0.0/8", "fd00::/8"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 2},
    "rfc822Names": {"type": "FORBIDDEN", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "uniformResourceIdentifiers": {"type": "OPTIONAL", "allowedValues": ["^spiffe://cluster\\.local/.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 1}
  },
  "keyUsages": ["digitalSignature", "keyEncipherment"],
  "extendedKeyUsages": ["SERVER_AUTH"],
  "keyAlgorithm": {"allowedValues": ["EC_P256", "EC_P384", "RSA_2048"], "defaultValue": "EC_P256"}
}"#,
    r#"{
  "name": "permissive",
  "validityPeriod": "P30D",
  "subject": {
    "commonName": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 1},
    "organization": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 1},
    "organizationalUnit": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 3},
    "locality": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 1},
    "stateOrProvince": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 1},
    "country": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 1}
  },
  "sans": {
    "dnsNames": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 8},
    "ipAddresses": {"type": "OPTIONAL", "allowedValues": ["0.0.0.0/0", "::/0"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 8},
    "rfc822Names": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 8},
    "uniformResourceIdentifiers": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 8}
  },
  "keyUsages": ["digitalSignature", "keyEncipherment", "keyAgreement"],
  "extendedKeyUsages": ["SERVER_AUTH", "CLIENT_AUTH"],
  "keyAlgorithm": {"allowedValues": ["RSA_2048", "EC_P256", "EC_P384", "EC_ED25519"], "defaultValue": "EC_P256"}
}"#,
];

/// Reads choices from the fuzz input; past its end every read is zero, so any input is a case.
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Choices read from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Choices { data }
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// A number below `n` (n ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }

    /// A flag.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// Up to `max` raw bytes (length first).
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.data.len());
        let (out, rest) = self.data.split_at(n);
        self.data = rest;
        out
    }

    /// True one time in sixteen: how often a defect is chosen, so that most inputs stay
    /// well-formed and reach the policy (a zero byte, and the end of the input, choose the common
    /// case).
    pub fn rare(&mut self) -> bool {
        self.byte() % 16 == 15
    }

    /// One of `options`, or (rarely) raw bytes from the input.
    pub fn text(&mut self, options: &[&'static str]) -> Vec<u8> {
        if self.rare() {
            return self.bytes(48).to_vec();
        }
        options[self.below(options.len())].as_bytes().to_vec()
    }
}

/// What one input builds: the signed request and the CertificateRequest fields around it.
#[derive(Clone, Debug)]
pub struct Case {
    /// The signed PKCS#10 request, DER.
    pub der: Vec<u8>,
    /// Which fixed key signed it (index into [`fixed_keys`]).
    pub key: usize,
    /// Which policy judges it (index into the fixed policies).
    pub policy: usize,
    /// `spec.duration`.
    pub duration: Option<String>,
    /// `spec.usages`.
    pub usages: Option<Vec<String>>,
    /// `spec.isCA`.
    pub is_ca: bool,
    /// The identities annotation.
    pub identities_annotation: Option<String>,
    /// Whether the issuer pins trust domain cluster.local.
    pub pin_trust_domain: bool,
}

const TRUST_DOMAINS: &[&str] = &[
    "cluster.local",
    "example.org",
    "Cluster.Local",
    "cluster.local:8443",
    "",
    "a..b",
];
const SEGMENTS: &[&str] = &[
    "ns",
    "default",
    "sa",
    "sleep",
    "istio-system",
    "",
    ".",
    "..",
    "%2e",
    "a b",
    "ü",
    "x?y",
    "x#y",
];
const DNS: &[&str] = &[
    "web.default.svc.cluster.local",
    "api.example.com",
    "*.example.com",
    "localhost",
    "EXAMPLE.com.",
    "-bad-.example",
    "a..b",
    "xn--bcher-kva.example",
];
const STRINGS: &[&str] = &[
    "",
    "Example",
    "web.default.svc",
    "US",
    "GB",
    "ZZZ",
    "user@example.com",
];

/// Builds a case from fuzz input. Never fails: every input is some request.
pub fn build(data: &[u8]) -> Case {
    let mut c = Choices::new(data);
    let key = c.below(fixed_keys().len());
    let policy = c.below(POLICIES.len());

    // Subject: up to 2 attributes (rarely a type or string encoding the decoder refuses).
    let common_oids: [&[u64]; 6] = [
        OID_O,
        OID_CN,
        &[2, 5, 4, 11],
        &[2, 5, 4, 6],
        &[2, 5, 4, 7],
        &[2, 5, 4, 8],
    ];
    let rare_oids: [&[u64]; 2] = [OID_EMAIL_IN_DN, &[2, 5, 4, 5]];
    let mut attrs: Vec<(&[u64], Vec<u8>)> = Vec::new();
    for _ in 0..c.below(3) {
        let oid = if c.rare() {
            rare_oids[c.below(rare_oids.len())]
        } else {
            common_oids[c.below(common_oids.len())]
        };
        let text = c.text(STRINGS);
        let tag = if c.rare() {
            [0x16, 0x1e, 0x14, 0x04][c.below(4)]
        } else {
            [0x0c, 0x13][c.below(2)]
        };
        attrs.push((oid, tlv(tag, &text)));
    }

    // SANs: up to 3 names, mostly SPIFFE IDs (built from parts), DNS names and IP addresses;
    // every other GeneralName type rarely.
    let mut names = Vec::new();
    let mut first_uri: Option<String> = None;
    for _ in 0..c.below(4) {
        match c.below(16) {
            0..=6 => {
                let mut uri = b"spiffe://".to_vec();
                if c.rare() {
                    uri.extend_from_slice(&c.text(TRUST_DOMAINS));
                    for _ in 0..c.below(6) {
                        uri.push(b'/');
                        uri.extend_from_slice(&c.text(SEGMENTS));
                    }
                } else {
                    uri.extend_from_slice(&c.text(&TRUST_DOMAINS[..2]));
                    uri.extend_from_slice(b"/ns/");
                    uri.extend_from_slice(&c.text(&SEGMENTS[..5]));
                    uri.extend_from_slice(b"/sa/");
                    uri.extend_from_slice(&c.text(&SEGMENTS[..5]));
                }
                if c.rare() {
                    uri.extend_from_slice(&c.text(&["?q=1", "#frag", "/", "%"]));
                }
                if first_uri.is_none() {
                    first_uri = Some(String::from_utf8_lossy(&uri).into_owned());
                }
                names.push(gn_uri_bytes(&uri));
            }
            7 => names.push(gn_uri_bytes(&c.text(&[
                "https://example.com/x",
                "SPIFFE://cluster.local/ns/a/sa/b",
                "spiffe:/cluster.local/x",
                "urn:uuid:1",
            ]))),
            8..=10 => names.push(ctx(2, false, &c.text(DNS))),
            11 => names.push(ctx(
                1,
                false,
                &c.text(&["user@example.com", "a@b", "@", "x"]),
            )),
            12 | 13 => {
                let len = if c.rare() {
                    [8, 0, 5][c.below(3)]
                } else {
                    [4, 16][c.below(2)]
                };
                let octets: Vec<u8> = (0..len).map(|_| c.byte()).collect();
                names.push(gn_ip(&octets));
            }
            14 => names.push(gn_other_name()),
            _ => {
                // directoryName or registeredID.
                if c.flag() {
                    names.push(ctx(4, true, &name(&[(OID_CN, utf8("dir"))])));
                } else {
                    names.push(tlv(0x88, &oid(&[1, 2, 3, 4])[2..]));
                }
            }
        }
    }

    let mut extensions = Vec::new();
    if !names.is_empty() || c.rare() {
        extensions.push(extension(OID_SAN, !c.rare(), san(&names)));
    }
    if c.flag() {
        let bits: Vec<u32> = if c.rare() {
            (0..9).filter(|_| c.flag()).collect()
        } else {
            [0, 2].into_iter().filter(|_| c.flag()).collect()
        };
        extensions.push(extension(OID_KU, c.flag(), key_usage(&bits)));
    }
    if c.flag() {
        let all: [&[u64]; 5] = [EKU_SERVER, EKU_CLIENT, EKU_CODE_SIGNING, EKU_OCSP, EKU_ANY];
        let offered = if c.rare() { &all[..] } else { &all[..2] };
        let chosen: Vec<&[u64]> = offered.iter().copied().filter(|_| c.flag()).collect();
        extensions.push(extension(OID_EKU, c.flag(), eku(&chosen)));
    }
    if c.rare() {
        extensions.push(extension(OID_BC, c.flag(), basic_constraints(c.flag())));
    }
    if c.rare() {
        extensions.push(extension(
            OID_NAME_CONSTRAINTS,
            c.flag(),
            seq(&[ctx(0, true, &seq(&[ctx(2, false, b"example.com")]))]),
        ));
    }
    if c.rare() {
        // An extension we do not know, critical or not, with fuzzed content.
        let value = c.bytes(16).to_vec();
        extensions.push(extension(&[1, 3, 6, 1, 4, 1, 99999, 1], c.flag(), value));
    }
    if c.rare() && !extensions.is_empty() {
        // The same extension twice.
        let again = extensions[0].clone();
        extensions.push(again);
    }

    let mut attributes = vec![extension_request(&extensions)];
    if c.rare() {
        attributes.push(seq(&[
            oid(OID_CHALLENGE_PASSWORD),
            set(&[utf8("password")]),
        ]));
    }

    let signer = &fixed_keys()[key];
    let raw = RawCsr {
        version: 0,
        subject: name(&attrs),
        spki: signer.subject_public_key_info(),
        attributes,
        sig_alg: alg_for(signer),
    };
    let der = raw.build(signer);

    let duration = match c.below(7) {
        0 => None,
        1 => Some("1h".to_owned()),
        2 => Some("1h0m0s".to_owned()),
        3 => Some("30s".to_owned()),
        4 => Some("2160h".to_owned()),
        5 => Some("-5m".to_owned()),
        _ => Some(String::from_utf8_lossy(c.bytes(12)).into_owned()),
    };
    let usages = match c.below(4) {
        0 => None,
        1 => Some(vec!["client auth".to_owned(), "server auth".to_owned()]),
        2 => Some(vec![
            "digital signature".to_owned(),
            "key encipherment".to_owned(),
            "server auth".to_owned(),
        ]),
        _ => Some(vec!["cert sign".to_owned(), "code signing".to_owned()]),
    };
    let is_ca = c.rare();
    let identities_annotation = match c.below(4) {
        0 => None,
        1 => first_uri,
        2 => Some("spiffe://cluster.local/ns/other/sa/other".to_owned()),
        _ => Some(String::from_utf8_lossy(c.bytes(40)).into_owned()),
    };
    let pin_trust_domain = c.flag();
    Case {
        der,
        key,
        policy,
        duration,
        usages,
        is_ca,
        identities_annotation,
        pin_trust_domain,
    }
}

/// How one case ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The request did not decode (its content broke a decoding rule).
    Undecodable,
    /// Decoded, and the policy or SPIFFE rules refused it.
    Refused,
    /// Signed, and the certificate passed the post-sign validation.
    Issued,
}

/// Runs one input through decode (DER and PEM must agree), the SPIFFE parser on every URI SAN
/// (what parses prints back unchanged), the policy decision (the explained and the plain
/// evaluation must agree), the leaf template, signing and post-sign validation, and the whole
/// `ca::issue` path (it must reach the same outcome). Panics when one of those invariants breaks;
/// a refusal is not a failure.
pub fn exercise(data: &[u8]) -> Outcome {
    let case = build(data);
    run(&case)
}

/// [`exercise`] for an already built case.
pub fn run(case: &Case) -> Outcome {
    let fx = fixture();
    let pem = to_pem(&case.der);
    let from_der = firefly::csr::decode_der(&case.der);
    let from_pem = firefly::csr::decode_pem(pem.as_bytes());
    assert_eq!(
        from_der.is_ok(),
        from_pem.is_ok(),
        "DER and PEM decoding disagree: {from_der:?} / {from_pem:?}"
    );
    let policy = &fx.policies[case.policy];
    let trust_domain = case.pin_trust_domain.then_some(&fx.trust_domain);
    let leaf_request = LeafRequest {
        csr_pem: pem.as_bytes(),
        duration: case.duration.as_deref(),
        usages: case.usages.as_deref(),
        is_ca: case.is_ca,
        identities_annotation: case.identities_annotation.as_deref(),
        trust_domain,
    };
    let opts = IssueOptions::default();
    let now = SystemTime::now();
    let whole = firefly::ca::issue(&fx.pki.sub_ca, policy, &leaf_request, &opts, now);

    let Ok(csr) = from_der else {
        assert!(
            matches!(whole, Err(ref e) if e.is_request_error()),
            "an undecodable request must be refused as the request's fault: {whole:?}"
        );
        return Outcome::Undecodable;
    };

    for uri in &csr.sans.uris {
        if let Ok(id) = SpiffeId::from_str(uri) {
            assert_eq!(id.to_string(), *uri, "a SPIFFE ID prints as it parsed");
        }
    }

    let request = Request {
        csr: &csr,
        duration: leaf_request.duration,
        usages: leaf_request.usages,
        is_ca: leaf_request.is_ca,
        identities_annotation: leaf_request.identities_annotation,
        trust_domain,
        minimum_duration: opts.minimum_duration,
    };
    let explained = policy.evaluate(&request, true).into_result();
    let decided = firefly::ca::decide(policy, &csr, &leaf_request, &opts);
    assert_eq!(
        explained.is_ok(),
        decided.is_ok(),
        "explained and plain evaluation disagree"
    );
    let profile = match decided {
        Ok(profile) => profile,
        Err(_) => {
            assert!(
                matches!(whole, Err(IssueError::Denied(_))),
                "a denied request is refused by issue() as denied: {whole:?}"
            );
            return Outcome::Refused;
        }
    };
    // Allowed by policy: the template, the signature and the post-sign checks must all pass;
    // a failure here is a template or validator bug, never the requester's.
    let issued = firefly::ca::sign_profile(&fx.pki.sub_ca, &csr, profile, &opts, now)
        .unwrap_or_else(|e| panic!("an allowed request failed to sign: {e}"));
    let whole = whole.unwrap_or_else(|e| panic!("issue() refused what decide() allowed: {e}"));
    assert_eq!(issued.spiffe_id, whole.spiffe_id);
    assert_eq!(issued.dns_names, whole.dns_names);
    let leaf = pem::parse(&issued.chain_pem).expect("the chain starts with a PEM certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.contents()).expect("the leaf parses");
    assert_eq!(
        cert.public_key().raw,
        csr.public_key_der.as_slice(),
        "the leaf carries the request's key"
    );
    Outcome::Issued
}
