//! The bad-input corpus of x509-svid.md §4 "Requests": one fixture per item, produced by code
//! (this file is the checked-in generator; nothing here is a hand-edited blob).

use rcgen::{KeyPair, SigningKey};

use super::csr::*;
use super::der::*;

/// What a case must produce.
#[derive(Debug, Clone)]
pub enum Expect {
    /// `IssueError::BadRequest` whose `CsrError` variant has this name.
    Csr(&'static str),
    /// `IssueError::Denied` with a violation on `field` whose rule or message contains `needle`.
    Denied {
        field: &'static str,
        needle: &'static str,
    },
}

/// One fixture: a request and the specific error it must get.
#[derive(Debug, Clone)]
pub struct BadCase {
    pub name: &'static str,
    /// The x509-svid.md §4 item it covers.
    pub item: &'static str,
    pub csr_pem: Vec<u8>,
    pub duration: Option<String>,
    pub usages: Option<Vec<String>>,
    pub is_ca: bool,
    pub annotation: Option<String>,
    pub trust_domain: Option<String>,
    pub expect: Expect,
}

const GOOD_URI: &str = "spiffe://cluster.local/ns/default/sa/sleep";

struct Keys {
    p256: KeyPair,
    other: KeyPair,
    rsa: KeyPair,
}

fn case(name: &'static str, item: &'static str, csr_pem: Vec<u8>, expect: Expect) -> BadCase {
    BadCase {
        name,
        item,
        csr_pem,
        duration: None,
        usages: None,
        is_ca: false,
        annotation: None,
        trust_domain: None,
        expect,
    }
}

fn csr_err(v: &'static str) -> Expect {
    Expect::Csr(v)
}

fn denied(field: &'static str, needle: &'static str) -> Expect {
    Expect::Denied { field, needle }
}

/// Replaces the outer SEQUENCE header of `der` with `header`.
fn with_outer_header(der: &[u8], header: &[u8]) -> Vec<u8> {
    let len_octets = if der[1] < 0x80 {
        1
    } else {
        1 + usize::from(der[1] & 0x7f)
    };
    let mut out = header.to_vec();
    out.extend_from_slice(&der[1 + len_octets..]);
    out
}

/// Every case. Keys are generated fresh each call.
pub fn bad_requests() -> Vec<BadCase> {
    let k = Keys {
        p256: p256(),
        other: p256(),
        rsa: rsa(2048),
    };
    let istio = || RawCsr::istio(&k.p256, GOOD_URI);
    let good_der = istio().build(&k.p256);
    let good_pem = to_pem(&good_der);
    let signed = |raw: RawCsr| raw.pem(&k.p256).into_bytes();
    let uri_case = |name: &'static str, item: &'static str, uri: &str, expect: Expect| {
        case(name, item, signed(istio().with_uris(&[uri])), expect)
    };
    let spiffe = || denied("sans.uniformResourceIdentifiers", "SPIFFE ID");

    let mut cases = vec![
        case("empty", "empty request", Vec::new(), csr_err("Empty")),
        case(
            "not_pem",
            "not PEM",
            b"this is not a certificate request\n".to_vec(),
            csr_err("NotPem"),
        ),
        case(
            "wrong_label",
            "wrong PEM label",
            pem::encode(&pem::Pem::new("CERTIFICATE", good_der.clone())).into_bytes(),
            csr_err("WrongPemLabel"),
        ),
        case(
            "two_blocks",
            "two PEM blocks",
            format!("{good_pem}{good_pem}").into_bytes(),
            csr_err("MultiplePemBlocks"),
        ),
        case(
            "trailing_data",
            "trailing data",
            format!("{good_pem}trailing garbage\n").into_bytes(),
            csr_err("TextOutsidePem"),
        ),
        case(
            "private_key",
            "a private key in the request",
            k.other.serialize_pem().into_bytes(),
            csr_err("PrivateKey"),
        ),
        case(
            "private_key_after_csr",
            "a private key in the request",
            format!("{good_pem}{}", k.other.serialize_pem()).into_bytes(),
            csr_err("PrivateKey"),
        ),
        case(
            "oversized",
            "oversized input (cap before decoding)",
            format!(
                "{good_pem}{}",
                "# padding padding padding padding\n".repeat(2000)
            )
            .into_bytes(),
            csr_err("TooLarge"),
        ),
        case(
            "ber_indefinite_length",
            "BER/indefinite DER",
            {
                let mut der = with_outer_header(&good_der, &[0x30, 0x80]);
                der.extend_from_slice(&[0, 0]);
                to_pem(&der).into_bytes()
            },
            csr_err("Der"),
        ),
        case(
            "non_minimal_length",
            "non-minimal DER",
            {
                let body_len = good_der.len() - 4; // P-256 requests are > 255 bytes: 0x82 header
                assert_eq!(good_der[1], 0x82, "fixture assumes a two-octet length");
                let header = [0x30, 0x83, 0x00, (body_len >> 8) as u8, body_len as u8];
                to_pem(&with_outer_header(&good_der, &header)).into_bytes()
            },
            csr_err("Der"),
        ),
        case(
            "non_minimal_integer",
            "non-minimal DER",
            {
                let raw = istio();
                let info = seq(&[
                    tlv(0x02, &[0x00, 0x00]),
                    raw.subject.clone(),
                    raw.spki.clone(),
                    ctx(0, true, &raw.attributes.concat()),
                ]);
                let sig = k.p256.sign(&info).expect("sign");
                to_pem(&RawCsr::assemble(info, &raw.sig_alg, &sig)).into_bytes()
            },
            csr_err("Der"),
        ),
        case(
            "truncated",
            "truncated DER",
            to_pem(&good_der[..good_der.len() - 7]).into_bytes(),
            csr_err("Der"),
        ),
        case(
            "deep_nesting",
            "deep nesting",
            {
                let mut nested = seq(&[]);
                for _ in 0..40 {
                    nested = seq(&[nested]);
                }
                let mut raw = istio();
                raw.attributes
                    .push(seq(&[oid(OID_UNSTRUCTURED_NAME), set(&[nested])]));
                signed(raw)
            },
            csr_err("Der"),
        ),
        case(
            "version_1",
            "CSR version ≠ 0",
            signed(RawCsr {
                version: 1,
                ..istio()
            }),
            csr_err("Version"),
        ),
        case(
            "duplicate_extensions",
            "duplicate extensions",
            signed(istio().with_extensions(&[
                extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)])),
                extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)])),
            ])),
            csr_err("DuplicateExtension"),
        ),
        case(
            "two_extension_requests",
            "two extensionRequest attributes",
            signed({
                let mut raw = istio();
                raw.attributes.push(raw.attributes[0].clone());
                raw
            }),
            csr_err("DuplicateAttribute"),
        ),
        case(
            "extension_request_with_two_values",
            "two extensionRequest attributes",
            signed({
                let mut raw = istio();
                let exts = seq(&[extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)]))]);
                raw.attributes = vec![seq(&[
                    oid(OID_EXTENSION_REQUEST),
                    set(&[exts.clone(), exts]),
                ])];
                raw
            }),
            csr_err("DuplicateAttribute"),
        ),
        case(
            "unparsable_extension",
            "an extension that does not parse",
            signed(istio().with_extensions(&[
                extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)])),
                extension(OID_KU, true, uint(5)),
            ])),
            csr_err("ExtensionUnparsable"),
        ),
        case(
            "name_constraints_extension",
            "any extension other than SAN/KU/EKU/BC",
            signed(istio().with_extensions(&[
                extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)])),
                extension(
                    OID_NAME_CONSTRAINTS,
                    true,
                    seq(&[ctx(0, true, &seq(&[gn_uri("spiffe://cluster.local")]))]),
                ),
            ])),
            csr_err("UnsupportedExtension"),
        ),
        case(
            "challenge_password",
            "challengePassword",
            signed({
                let mut raw = istio();
                raw.attributes
                    .push(seq(&[oid(OID_CHALLENGE_PASSWORD), set(&[utf8("hunter2")])]));
                raw
            }),
            csr_err("UnsupportedAttribute"),
        ),
        case(
            "other_attribute",
            "other attributes",
            signed({
                let mut raw = istio();
                raw.attributes
                    .push(seq(&[oid(OID_UNSTRUCTURED_NAME), set(&[utf8("host")])]));
                raw
            }),
            csr_err("UnsupportedAttribute"),
        ),
        case(
            "bad_signature",
            "bad CSR signature",
            {
                let raw = istio();
                let sig = k
                    .p256
                    .sign(b"not the certification request info")
                    .expect("sign");
                to_pem(&raw.build_with_signature(&sig)).into_bytes()
            },
            csr_err("BadSignature"),
        ),
        case(
            "signed_by_another_key",
            "bad CSR signature",
            istio().pem(&k.other).into_bytes(),
            csr_err("BadSignature"),
        ),
        case(
            "md5_signature",
            "MD5 signatures",
            RawCsr {
                sig_alg: alg_md5_rsa(),
                ..RawCsr::istio(&k.rsa, GOOD_URI)
            }
            .pem(&k.rsa)
            .into_bytes(),
            csr_err("WeakSignatureAlgorithm"),
        ),
        case(
            "sha1_rsa_signature",
            "SHA-1 signatures",
            RawCsr {
                sig_alg: alg_sha1_rsa(),
                ..RawCsr::istio(&k.rsa, GOOD_URI)
            }
            .pem(&k.rsa)
            .into_bytes(),
            csr_err("WeakSignatureAlgorithm"),
        ),
        case(
            "sha1_ecdsa_signature",
            "SHA-1 signatures",
            signed(RawCsr {
                sig_alg: alg_ecdsa_sha1(),
                ..istio()
            }),
            csr_err("WeakSignatureAlgorithm"),
        ),
        case(
            "dsa_signature",
            "DSA signatures",
            signed(RawCsr {
                sig_alg: alg_dsa_sha256(),
                ..istio()
            }),
            csr_err("WeakSignatureAlgorithm"),
        ),
        case(
            "algorithm_key_mismatch",
            "algorithm/key mismatch",
            signed(RawCsr {
                sig_alg: alg_rsa_sha256(),
                ..istio()
            }),
            csr_err("AlgorithmKeyMismatch"),
        ),
        case(
            "rsa_1024",
            "RSA < 2048",
            signed(RawCsr {
                spki: fake_rsa_spki(1024, 65537),
                sig_alg: alg_rsa_sha256(),
                ..istio()
            }),
            csr_err("RsaKeySize"),
        ),
        case(
            "rsa_odd_size",
            "odd RSA sizes",
            signed(RawCsr {
                spki: fake_rsa_spki(2056, 65537),
                sig_alg: alg_rsa_sha256(),
                ..istio()
            }),
            csr_err("RsaKeySize"),
        ),
        case(
            "rsa_exponent_3",
            "RSA exponent ≠ 65537",
            signed(RawCsr {
                spki: fake_rsa_spki(2048, 3),
                sig_alg: alg_rsa_sha256(),
                ..istio()
            }),
            csr_err("RsaExponent"),
        ),
        case(
            "curve_secp256k1",
            "unsupported curves (secp256k1)",
            signed(RawCsr {
                spki: fake_ec_spki(OID_SECP256K1, 32),
                ..istio()
            }),
            csr_err("UnsupportedCurve"),
        ),
        case(
            "curve_p224",
            "unsupported curves (P-224)",
            signed(RawCsr {
                spki: fake_ec_spki(OID_P224, 28),
                ..istio()
            }),
            csr_err("UnsupportedCurve"),
        ),
        case(
            "curve_brainpool",
            "unsupported curves (brainpool)",
            signed(RawCsr {
                spki: fake_ec_spki(OID_BRAINPOOL_P256R1, 32),
                ..istio()
            }),
            csr_err("UnsupportedCurve"),
        ),
        case(
            "dsa_key",
            "DSA keys",
            signed(RawCsr {
                spki: seq(&[
                    seq(&[oid(OID_DSA), seq(&[uint(23), uint(11), uint(4)])]),
                    bits(&uint(9)),
                ]),
                ..istio()
            }),
            csr_err("UnsupportedKeyType"),
        ),
        case(
            "ec_point_not_on_curve",
            "EC point not on the curve",
            signed(RawCsr {
                spki: fake_ec_spki(OID_P256, 32),
                ..istio()
            }),
            csr_err("InvalidPublicKey"),
        ),
        case(
            "no_uri_san",
            "no URI SAN",
            signed(istio().with_extensions(&[])),
            denied("sans.uniformResourceIdentifiers", "REQUIRED"),
        ),
        case(
            "two_uri_sans",
            "two URI SANs",
            signed(istio().with_uris(&[GOOD_URI, "spiffe://cluster.local/ns/default/sa/other"])),
            denied("sans.uniformResourceIdentifiers", "C1"),
        ),
        case(
            "two_equal_uri_sans",
            "two URI SANs",
            signed(istio().with_uris(&[GOOD_URI, GOOD_URI])),
            denied("sans.uniformResourceIdentifiers", "C1"),
        ),
        uri_case(
            "https_scheme",
            "non-spiffe scheme",
            "https://cluster.local/ns/default/sa/sleep",
            spiffe(),
        ),
        uri_case(
            "capitalised_scheme",
            "Spiffe://",
            "Spiffe://cluster.local/ns/default/sa/sleep",
            spiffe(),
        ),
        uri_case(
            "wrong_trust_domain",
            "wrong trust domain",
            "spiffe://evil.example/ns/default/sa/sleep",
            denied("sans.uniformResourceIdentifiers", "allowedValues"),
        ),
        uri_case(
            "uppercase_trust_domain",
            "uppercase trust domain",
            "spiffe://Cluster.local/ns/default/sa/sleep",
            spiffe(),
        ),
        uri_case(
            "percent_encoded_trust_domain",
            "percent-encoded trust domain",
            "spiffe://cluster%2elocal/ns/default/sa/sleep",
            spiffe(),
        ),
        uri_case(
            "port",
            "port",
            "spiffe://cluster.local:8443/ns/default/sa/sleep",
            spiffe(),
        ),
        uri_case(
            "userinfo",
            "userinfo",
            "spiffe://admin@cluster.local/ns/default/sa/sleep",
            spiffe(),
        ),
        uri_case(
            "trust_domain_only",
            "spiffe://td",
            "spiffe://cluster.local",
            spiffe(),
        ),
        uri_case(
            "trailing_slash",
            "trailing /",
            "spiffe://cluster.local/ns/default/sa/sleep/",
            spiffe(),
        ),
        uri_case(
            "double_slash",
            "//",
            "spiffe://cluster.local/ns//sa/sleep",
            spiffe(),
        ),
        uri_case(
            "dot_segment",
            "/./",
            "spiffe://cluster.local/ns/./sa/sleep",
            spiffe(),
        ),
        uri_case(
            "dot_dot_segment",
            "/../",
            "spiffe://cluster.local/ns/../sa/sleep",
            spiffe(),
        ),
        uri_case(
            "query",
            "query",
            "spiffe://cluster.local/ns/default/sa/sleep?x=1",
            spiffe(),
        ),
        uri_case(
            "fragment",
            "fragment",
            "spiffe://cluster.local/ns/default/sa/sleep#f",
            spiffe(),
        ),
        uri_case(
            "nul_byte",
            "NUL",
            "spiffe://cluster.local/ns/default/sa/sl\0eep",
            spiffe(),
        ),
        case(
            "non_ascii",
            "non-ASCII",
            signed(istio().with_sans(&[gn_uri_bytes(
                "spiffe://cluster.local/ns/d\u{e9}faut/sa/x".as_bytes(),
            )])),
            spiffe(),
        ),
        uri_case(
            "id_longer_than_2048",
            "ID > 2048 bytes",
            &format!("spiffe://cluster.local/ns/default/sa/{}", "a".repeat(2048)),
            spiffe(),
        ),
        uri_case(
            "trust_domain_longer_than_255",
            "trust domain > 255 bytes",
            &format!("spiffe://{}/ns/default/sa/sleep", "a".repeat(256)),
            spiffe(),
        ),
        BadCase {
            annotation: Some(
                "spiffe://cluster.local/ns/default/sa/other,istio-csr-serving".to_owned(),
            ),
            ..case(
                "identities_annotation_mismatch",
                "identity not matching the identities annotation",
                good_pem.clone().into_bytes(),
                denied("istio.cert-manager.io/identities", "URI SANs"),
            )
        },
        BadCase {
            annotation: Some("spiffe://cluster.local/ns/a,b/sa/sleep".to_owned()),
            ..uri_case(
                "comma_inside_identity",
                "a comma inside an identity",
                "spiffe://cluster.local/ns/a,b/sa/sleep",
                spiffe(),
            )
        },
        BadCase {
            trust_domain: Some("mesh.example".to_owned()),
            ..case(
                "issuer_trust_domain_mismatch",
                "wrong trust domain (issuer-level)",
                good_pem.clone().into_bytes(),
                denied("sans.uniformResourceIdentifiers", "trust domain"),
            )
        },
        case(
            "dns_san_under_uri_policy",
            "DNS SAN under a URI-only policy",
            signed(istio().with_sans(&[gn_uri(GOOD_URI), gn_dns("sleep.default.svc")])),
            denied("sans.dnsNames", "FORBIDDEN"),
        ),
        case(
            "ip_san_under_uri_policy",
            "IP SAN under a URI-only policy",
            signed(istio().with_sans(&[gn_uri(GOOD_URI), gn_ip(&[10, 0, 0, 1])])),
            denied("sans.ipAddresses", "FORBIDDEN"),
        ),
        case(
            "email_san_under_uri_policy",
            "email SAN under a URI-only policy",
            signed(istio().with_sans(&[gn_uri(GOOD_URI), gn_email("a@example.com")])),
            denied("sans.rfc822Names", "FORBIDDEN"),
        ),
        case(
            "other_name_san",
            "otherName SAN",
            signed(istio().with_sans(&[gn_uri(GOOD_URI), gn_other_name()])),
            csr_err("UnsupportedSanType"),
        ),
        case(
            "common_name_forbidden",
            "a CommonName under a policy that forbids it",
            signed(RawCsr {
                subject: name(&[(OID_CN, utf8("sleep"))]),
                ..istio()
            }),
            denied("subject.commonName", "FORBIDDEN"),
        ),
        case(
            "subject_email_attribute",
            "other subject attributes",
            signed(RawCsr {
                subject: name(&[(OID_EMAIL_IN_DN, ia5(b"a@example.com"))]),
                ..istio()
            }),
            csr_err("UnsupportedSubjectAttribute"),
        ),
        case(
            "basic_constraints_ca_true",
            "CSR basicConstraints CA:true",
            signed(istio().with_extensions(&[
                extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)])),
                extension(OID_BC, true, basic_constraints(true)),
            ])),
            csr_err("CaRequested"),
        ),
        case(
            "key_usage_key_cert_sign",
            "KU keyCertSign",
            signed(istio().with_extensions(&[
                extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)])),
                extension(OID_KU, true, key_usage(&[0, 5])),
            ])),
            csr_err("ForbiddenKeyUsage"),
        ),
        case(
            "key_usage_crl_sign",
            "KU cRLSign",
            signed(istio().with_extensions(&[
                extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)])),
                extension(OID_KU, true, key_usage(&[0, 6])),
            ])),
            csr_err("ForbiddenKeyUsage"),
        ),
        case(
            "eku_code_signing",
            "EKU codeSigning",
            signed(istio().with_extensions(&[
                extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)])),
                extension(OID_EKU, false, eku(&[EKU_SERVER, EKU_CODE_SIGNING])),
            ])),
            csr_err("ForbiddenExtendedKeyUsage"),
        ),
        case(
            "eku_ocsp_signing",
            "EKU OCSP",
            signed(istio().with_extensions(&[
                extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)])),
                extension(OID_EKU, false, eku(&[EKU_OCSP])),
            ])),
            csr_err("ForbiddenExtendedKeyUsage"),
        ),
        case(
            "eku_any",
            "EKU any",
            signed(istio().with_extensions(&[
                extension(OID_SAN, true, san(&[gn_uri(GOOD_URI)])),
                extension(OID_EKU, false, eku(&[EKU_ANY])),
            ])),
            csr_err("ForbiddenExtendedKeyUsage"),
        ),
        BadCase {
            is_ca: true,
            ..case(
                "spec_is_ca",
                "spec.isCA: true",
                good_pem.clone().into_bytes(),
                denied("isCA", "leaf only"),
            )
        },
        BadCase {
            usages: Some(vec!["digital signature".into(), "code signing".into()]),
            ..case(
                "usages_outside_policy",
                "usages outside the policy",
                good_pem.clone().into_bytes(),
                denied("extendedKeyUsages", "CODE_SIGNING"),
            )
        },
        BadCase {
            usages: Some(vec![
                "digital signature".into(),
                "signing everything".into(),
            ]),
            ..case(
                "unknown_usage",
                "usages outside the policy",
                good_pem.clone().into_bytes(),
                denied("usages", "known usage"),
            )
        },
    ];
    for (name, value, needle) in [
        ("duration_zero", "0s", "zero"),
        ("duration_negative", "-1h", "negative"),
        ("duration_below_floor", "30s", "minimum"),
        ("duration_overflowing", "9999999999999h", "too large"),
        ("duration_unparsable", "one hour", "not valid Go"),
    ] {
        cases.push(BadCase {
            duration: Some(value.to_owned()),
            ..case(
                name,
                "duration 0, negative, below a floor, absurdly long or unparsable",
                good_pem.clone().into_bytes(),
                denied("duration", needle),
            )
        });
    }
    cases
}
