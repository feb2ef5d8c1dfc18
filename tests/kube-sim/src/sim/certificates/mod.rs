//! The `certificates.k8s.io` built-ins and the admission rules kube-apiserver applies to them:
//! CertificateSigningRequest, PodCertificateRequest (with NodeRestriction), ClusterTrustBundle.
//! Writes made straight through the harness (no caller identity) skip the authorization checks
//! but not validation.

mod crypto;
mod csr;
mod ctb;
mod go_x509;
mod pcr;
pub(crate) mod schemas;

use super::auth::Identity;
use super::release::Release;
use super::status::{ApiError, Cause};
use super::store::{Admission, ResourceDef, Store, WriteOpts};
use base64::Engine as _;
use serde_json::Value;

/// Admission and version conversion for `certificates.k8s.io`.
#[derive(Debug)]
pub struct Certificates {
    /// The emulated release.
    pub release: Release,
}

const GROUP: &str = "certificates.k8s.io";

impl Admission for Certificates {
    fn create(
        &self,
        store: &Store,
        def: &ResourceDef,
        ns: &str,
        obj: &mut Value,
        o: &WriteOpts,
    ) -> Result<(), ApiError> {
        if def.group != GROUP {
            return Ok(());
        }
        let id = o.identity.as_deref();
        match def.plural.as_str() {
            "certificatesigningrequests" => csr::create(def, obj, id),
            "podcertificaterequests" => pcr::create(self.release, store, def, ns, obj, id),
            "clustertrustbundles" => ctb::write(store, def, None, obj, id),
            _ => Ok(()),
        }
    }

    fn update(
        &self,
        store: &Store,
        def: &ResourceDef,
        old: &Value,
        new: &mut Value,
        o: &WriteOpts,
    ) -> Result<(), ApiError> {
        if def.group != GROUP {
            return Ok(());
        }
        let id = o.identity.as_deref();
        let sub = o.subresource.as_deref();
        match def.plural.as_str() {
            "certificatesigningrequests" => csr::update(store, def, old, new, id, sub),
            "podcertificaterequests" => pcr::update(store, def, old, new, id, sub),
            "clustertrustbundles" => ctb::write(store, def, Some(old), new, id),
            _ => Ok(()),
        }
    }

    fn convert(&self, def: &ResourceDef, obj: &mut Value) {
        // v1 has no legacy key fields: stored v1beta1 objects lose them on the way out.
        if def.plural == "podcertificaterequests"
            && def.version == "v1"
            && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.remove("pkixPublicKey");
            spec.remove("proofOfPossession");
        }
    }
}

/// A 422 Invalid with one cause.
fn invalid(def: &ResourceDef, name: &str, field: &str, reason: &str, message: String) -> ApiError {
    ApiError::invalid(
        &def.kind,
        &def.group,
        name,
        vec![Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        }],
    )
}

/// Collects causes, then answers 422 with all of them.
struct Causes<'a> {
    def: &'a ResourceDef,
    name: String,
    list: Vec<Cause>,
}

impl<'a> Causes<'a> {
    fn new(def: &'a ResourceDef, obj: &Value) -> Self {
        Causes {
            def,
            name: name_of(obj).to_string(),
            list: Vec::new(),
        }
    }
    fn required(&mut self, field: &str) {
        self.push(field, "FieldValueRequired", "Required value".into());
    }
    fn invalid(&mut self, field: &str, value: &str, why: &str) {
        self.push(
            field,
            "FieldValueInvalid",
            format!("Invalid value: {value:?}: {why}"),
        );
    }
    fn forbidden(&mut self, field: &str, why: &str) {
        self.push(field, "FieldValueForbidden", format!("Forbidden: {why}"));
    }
    fn push(&mut self, field: &str, reason: &str, message: String) {
        self.list.push(Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        });
    }
    fn finish(self) -> Result<(), ApiError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                &self.def.kind,
                &self.def.group,
                &self.name,
                self.list,
            ))
        }
    }
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The string at JSON pointer `p`, or `""`.
pub(crate) fn str_at<'a>(obj: &'a Value, p: &str) -> &'a str {
    obj.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// Decode a `[]byte` field (base64 in JSON); `None` for absent or empty.
fn bytes_at(obj: &Value, p: &str) -> Result<Option<Vec<u8>>, String> {
    match obj.pointer(p) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Some)
            .map_err(|e| format!("not base64: {e}")),
        Some(_) => Err("must be a base64 string".into()),
    }
}

/// DNS-1123 subdomain.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// The name part of a qualified name (`[prefix/]name`): at most 63 alphanumerics, '-', '_' or
/// '.', starting and ending with an alphanumeric.
pub(crate) fn qualified_name_part(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.as_bytes()[n.len() - 1].is_ascii_alphanumeric()
}

fn is_dns_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// `ValidateSignerName`: `<domain>/<path>`, the domain at least two DNS labels, each
/// '.'-separated component of the path a DNS-1123 subdomain (so no `*`: wildcards belong to RBAC
/// resource names, not to signer names), at most 571 characters.
fn signer_name_error(s: &str) -> Option<String> {
    let Some((domain, path)) = s.split_once('/') else {
        return Some(
            "must be a fully qualified domain and path of the form 'example.com/signer-name'"
                .into(),
        );
    };
    if path.contains('/') {
        return Some(
            "must be a fully qualified domain and path of the form 'example.com/signer-name'"
                .into(),
        );
    }
    if domain.len() > 253 || domain.split('.').count() < 2 || !domain.split('.').all(is_dns_label) {
        return Some(
            "the domain part must be a fully qualified DNS name with at least two labels".into(),
        );
    }
    if let Some(bad) = path.split('.').find(|p| !is_path_component(p)) {
        return Some(format!(
            "validating component {bad:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ));
    }
    if s.len() > 571 {
        return Some("must be no more than 571 characters".into());
    }
    None
}

/// One '.'-separated component of a signer name's path: kube-apiserver judges it with
/// `IsDNS1123Subdomain`, which for a text without dots means lowercase alphanumerics and '-',
/// alphanumeric at both ends, at most 253 characters.
fn is_path_component(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 253
        && p.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !p.starts_with('-')
        && !p.ends_with('-')
}

/// Whether the signer is one of Kubernetes' own (`kubernetes.io/…`, `*.kubernetes.io/…`).
fn is_kubernetes_signer(s: &str) -> bool {
    let domain = s.split('/').next().unwrap_or_default();
    domain == "kubernetes.io" || domain.ends_with(".kubernetes.io")
}

/// kube-apiserver's Forbidden from an admission plugin: `<resource> "<name>" is forbidden: <why>`.
fn forbidden(def: &ResourceDef, name: &str, why: &str) -> ApiError {
    let q = super::status::qualified(&def.plural, &def.group);
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!("{q} {name:?} is forbidden: {why}"),
    );
    e.details = Some(Box::new((
        name.into(),
        def.group.clone(),
        def.plural.clone(),
    )));
    e
}

/// The caller may use `verb` on the signer (harness writes without identity may).
fn may(store: &Store, id: Option<&Identity>, verb: &str, signer: &str) -> bool {
    id.is_none_or(|id| super::rbac::signer_allowed(store, id, verb, signer))
}

/// One parsed PEM block.
struct Block {
    tag: String,
    has_headers: bool,
    der: Vec<u8>,
}

/// The PEM blocks of a text (non-PEM text around them is ignored).
fn pem_blocks(text: &str) -> Result<Vec<Block>, String> {
    if let Some(blocks) = plain_pem_blocks(text) {
        return Ok(blocks);
    }
    let blocks = pem::parse_many(text).map_err(|e| format!("PEM does not parse: {e}"))?;
    Ok(blocks
        .into_iter()
        .map(|b| Block {
            tag: b.tag().to_string(),
            has_headers: b.headers().iter().next().is_some(),
            der: b.contents().to_vec(),
        })
        .collect())
}

/// The blocks of a text made only of plain PEM blocks (BEGIN line, base64 lines, the matching
/// END line, nothing but whitespace around them, no headers), as `pem::parse_many` reads them;
/// `None` for anything else, which goes to `pem::parse_many`. Every status write of a signer
/// carries such a chain, and the general parser, which reads it a character at a time, was a
/// tenth of kube-sim's work in a CSR backlog.
fn plain_pem_blocks(text: &str) -> Option<Vec<Block>> {
    use base64::Engine as _;
    let mut blocks = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let after_begin = rest.strip_prefix("-----BEGIN ")?;
        let (tag, after_tag) = after_begin.split_once("-----")?;
        if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_uppercase() || b == b' ') {
            return None;
        }
        let body_start = after_tag
            .strip_prefix("\r\n")
            .or_else(|| after_tag.strip_prefix('\n'))?;
        let end_marker = format!("-----END {tag}-----");
        let (body, after_end) = body_start.split_once(end_marker.as_str())?;
        // The lines without their line breaks; anything else that is not base64 (a header, a
        // space) fails the decoding, and the general parser judges the text.
        let mut b64 = Vec::with_capacity(body.len());
        for line in body.split('\n') {
            b64.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        }
        let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        blocks.push(Block {
            tag: tag.to_string(),
            has_headers: false,
            der,
        });
        rest = after_end.trim_start();
    }
    (!blocks.is_empty()).then_some(blocks)
}

/// Whether `der` parses as one X.509 certificate as Go reads it (see [`go_x509`]), as
/// kube-apiserver requires of every block of a signer's chain. A signer sends the same
/// intermediates with every leaf, so the DER of certificates that parsed is remembered (a few
/// hundred at most): parsing three intermediates per answer was a tenth of kube-sim's work in a
/// CSR backlog. The answer is the parser's either way; a certificate that does not parse is
/// never remembered.
fn certificate_parses(der: &[u8]) -> bool {
    use std::collections::HashSet;
    use std::sync::{LazyLock, Mutex, PoisonError};
    const REMEMBERED: usize = 256;
    static PARSED: LazyLock<Mutex<HashSet<Vec<u8>>>> = LazyLock::new(Mutex::default);
    let parsed = || PARSED.lock().unwrap_or_else(PoisonError::into_inner);
    if parsed().contains(der) {
        return true;
    }
    if go_x509::parse_certificate(der).is_err() {
        return false;
    }
    let mut parsed = parsed();
    if parsed.len() >= REMEMBERED {
        parsed.clear();
    }
    parsed.insert(der.to_vec());
    true
}

fn now_ts() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// The rendering of a `metav1.Time`.
fn fmt_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod signer_name_tests {
    use super::signer_name_error;

    #[test]
    fn path_components_are_dns_subdomains_without_wildcards() {
        for ok in [
            "example.com/signer",
            "example.com/ns.name",
            "clusterissuers.cert-manager.io/istio-ca",
        ] {
            assert_eq!(signer_name_error(ok), None, "{ok}");
        }
        let long = format!("example.com/{}", "a".repeat(200));
        assert_eq!(signer_name_error(&long), None, "a 200-character component");
        for bad in [
            "example.com/*",
            "example.com/a.*",
            "example.com/",
            "example.com/a..b",
            "example.com/-a",
            "example.com/A",
            "example.com/a/b",
            "com/signer",
        ] {
            assert!(signer_name_error(bad).is_some(), "{bad}");
        }
    }
}

#[cfg(test)]
mod pem_tests {
    use super::*;

    fn general(text: &str) -> Result<Vec<(String, bool, Vec<u8>)>, String> {
        pem::parse_many(text)
            .map(|blocks| {
                blocks
                    .into_iter()
                    .map(|b| {
                        (
                            b.tag().to_string(),
                            b.headers().iter().next().is_some(),
                            b.contents().to_vec(),
                        )
                    })
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    fn plain(text: &str) -> Option<Vec<(String, bool, Vec<u8>)>> {
        plain_pem_blocks(text).map(|blocks| {
            blocks
                .into_iter()
                .map(|b| (b.tag, b.has_headers, b.der))
                .collect()
        })
    }

    fn encoded(tag: &str, len: usize, ending: pem::LineEnding) -> String {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        pem::encode_config(
            &pem::Pem::new(tag, bytes),
            pem::EncodeConfig::new().set_line_ending(ending),
        )
    }

    #[test]
    fn plain_chains_read_as_the_general_parser_reads_them() {
        let lf = pem::LineEnding::LF;
        let crlf = pem::LineEnding::CRLF;
        let chains = [
            encoded("CERTIFICATE", 500, lf),
            encoded("CERTIFICATE", 1, crlf),
            format!(
                "{}{}",
                encoded("CERTIFICATE", 700, lf),
                encoded("CERTIFICATE", 48, lf)
            ),
            format!(
                "\n  {}\n\n{}\n",
                encoded("CERTIFICATE", 64, crlf),
                encoded("CERTIFICATE REQUEST", 65, lf)
            ),
        ];
        for chain in &chains {
            let fast = plain(chain).unwrap_or_else(|| panic!("not read as plain: {chain:?}"));
            assert_eq!(Ok(fast), general(chain), "{chain:?}");
        }
    }

    #[test]
    fn a_certificate_parses_the_same_from_memory_and_garbage_never_does() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["remembered.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        assert!(certificate_parses(&der));
        assert!(certificate_parses(&der), "remembered");
        let mut truncated = der.clone();
        truncated.truncate(der.len() - 1);
        for _ in 0..2 {
            assert!(!certificate_parses(&truncated));
            assert!(!certificate_parses(b"not a certificate"));
        }
    }

    #[test]
    fn anything_but_plain_pem_goes_to_the_general_parser() {
        let cert = encoded("CERTIFICATE", 300, pem::LineEnding::LF);
        let headers = cert.replacen('\n', "\nProc-Type: 4,ENCRYPTED\n\n", 1);
        let mismatched = cert.replace("END CERTIFICATE", "END CERTIFICATE REQUEST");
        let bad_base64 =
            cert.replacen('A', "*", 1)
                .replacen("CERTIFICATE-----\n", "CERTIFICATE-----\n%", 1);
        let text_around = format!("issued by us\n{cert}");
        let lowercase = cert.replace("CERTIFICATE", "certificate");
        let truncated = cert[..cert.len() - 10].to_string();
        let nested = cert.replacen('\n', "\n-----END PRIVATE KEY-----\n", 1);
        for text in [
            headers,
            mismatched,
            bad_base64,
            text_around,
            lowercase,
            truncated,
            nested,
            String::new(),
            "   \n".into(),
        ] {
            assert!(plain(&text).is_none(), "read as plain: {text:?}");
            // The general parser gives what pem_blocks gives.
            assert_eq!(
                pem_blocks(&text).map(|b| b
                    .into_iter()
                    .map(|b| (b.tag, b.has_headers, b.der))
                    .collect::<Vec<_>>()),
                general(&text).map_err(|e| format!("PEM does not parse: {e}")),
            );
        }
    }
}
