//! PodCertificateRequest (v1beta1, v1): spec validation per release, proof of possession, the stub
//! PKCS#10, NodeRestriction, immutable spec, the status rules and the `sign` check.

use super::crypto;
use super::{
    Causes, ResourceDef, Store, bytes_at, certificate_parses, forbidden, is_dns_subdomain,
    is_kubernetes_signer, may, name_of, parse_time, pem_blocks, qualified_name_part, str_at,
};
use crate::sim::auth::Identity;
use crate::sim::release::Release;
use crate::sim::status::ApiError;
use serde_json::{Value, json};
use x509_parser::prelude::FromDer as _;

const MIN_EXPIRATION: i64 = 3600;
const MAX_EXPIRATION: i64 = 91 * 24 * 3600;
const KUBERNETES_MAX_EXPIRATION: i64 = 86400;
const MAX_KEY_FIELD: usize = 10 * 1024;
const MAX_CHAIN: usize = 100 * 1024;
const MAX_ANNOTATIONS: usize = 256 * 1024;

/// The public key the request is for (SPKI DER): from the stub CSR, else `pkixPublicKey`.
fn requested_key(obj: &Value) -> Option<Vec<u8>> {
    if let Ok(Some(stub)) = bytes_at(obj, "/spec/stubPKCS10Request")
        && let Ok((_, csr)) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&stub)
    {
        return Some(csr.certification_request_info.subject_pki.raw.to_vec());
    }
    bytes_at(obj, "/spec/pkixPublicKey").ok().flatten()
}

/// Create: defaults, validation for the served version and release, PoP / stub checks, then
/// NodeRestriction for node callers.
pub fn create(
    release: Release,
    store: &Store,
    def: &ResourceDef,
    ns: &str,
    obj: &mut Value,
    id: Option<&Identity>,
) -> Result<(), ApiError> {
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = obj["spec"].as_object_mut().expect("spec is an object");
    // An empty stub is unset (k8s-openapi serialises the missing field as "").
    if spec
        .get("stubPKCS10Request")
        .is_some_and(|v| v.as_str() == Some("") || v.is_null())
    {
        spec.remove("stubPKCS10Request");
    }
    for k in ["pkixPublicKey", "proofOfPossession"] {
        if spec
            .get(k)
            .is_some_and(|v| v.as_str() == Some("") || v.is_null())
        {
            spec.remove(k);
        }
    }
    // Fields the served version does not have are dropped on decode, as for any unknown field.
    if def.version == "v1" {
        spec.remove("pkixPublicKey");
        spec.remove("proofOfPossession");
    }
    if !release.has_stub() {
        spec.remove("stubPKCS10Request");
    }
    if spec.get("maxExpirationSeconds").is_none_or(Value::is_null) {
        spec.insert("maxExpirationSeconds".into(), json!(86400));
    }
    let mut c = Causes::new(def, obj);
    let signer = str_at(obj, "/spec/signerName");
    if signer.is_empty() {
        c.required("spec.signerName");
    } else if let Some(why) = super::signer_name_error(signer) {
        c.invalid("spec.signerName", signer, &why);
    }
    for f in ["podName", "serviceAccountName", "nodeName"] {
        let v = str_at(obj, &format!("/spec/{f}"));
        if v.is_empty() {
            c.required(&format!("spec.{f}"));
        } else if !is_dns_subdomain(v) {
            c.invalid(&format!("spec.{f}"), v, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'");
        }
    }
    for f in ["podUID", "serviceAccountUID", "nodeUID"] {
        let v = str_at(obj, &format!("/spec/{f}"));
        if v.is_empty() {
            c.required(&format!("spec.{f}"));
        } else if v.len() > 128 {
            c.push(
                &format!("spec.{f}"),
                "FieldValueTooLong",
                "Too long: may not be more than 128 bytes".into(),
            );
        }
    }
    match obj
        .pointer("/spec/maxExpirationSeconds")
        .and_then(Value::as_i64)
    {
        None => c.invalid("spec.maxExpirationSeconds", "", "must be an integer"),
        Some(m) => {
            let max = if is_kubernetes_signer(signer) {
                KUBERNETES_MAX_EXPIRATION
            } else {
                MAX_EXPIRATION
            };
            if !(MIN_EXPIRATION..=max).contains(&m) {
                c.invalid(
                    "spec.maxExpirationSeconds",
                    &m.to_string(),
                    &format!("must be in the range [{MIN_EXPIRATION}, {max}]"),
                );
            }
        }
    }
    if let Some(a) = obj
        .pointer("/spec/unverifiedUserAnnotations")
        .filter(|v| !v.is_null())
    {
        match a.as_object() {
            None => c.invalid(
                "spec.unverifiedUserAnnotations",
                "",
                "must be a map of string to string",
            ),
            Some(m) => {
                let mut total = 0usize;
                for (k, v) in m {
                    total += k.len() + v.as_str().map_or(0, str::len);
                    if !v.is_string() {
                        c.invalid(
                            &format!("spec.unverifiedUserAnnotations[{k}]"),
                            "",
                            "must be a string",
                        );
                    }
                    let ok = k.split_once('/').is_some_and(|(p, n)| {
                        p.contains('.') && is_dns_subdomain(p) && qualified_name_part(n)
                    });
                    if !ok {
                        c.invalid(
                            "spec.unverifiedUserAnnotations",
                            k,
                            "keys must be domain-prefixed qualified names (e.g. 'example.com/key')",
                        );
                    }
                }
                if total > MAX_ANNOTATIONS {
                    c.push(
                        "spec.unverifiedUserAnnotations",
                        "FieldValueTooLong",
                        format!("Too long: must have at most {MAX_ANNOTATIONS} bytes"),
                    );
                }
            }
        }
    }
    // The key: a stub CSR (1.36+, required through v1) or the legacy pkix + PoP pair.
    let pod_uid = str_at(obj, "/spec/podUID").to_string();
    let stub = bytes_at(obj, "/spec/stubPKCS10Request");
    let pkix = bytes_at(obj, "/spec/pkixPublicKey");
    let pop = bytes_at(obj, "/spec/proofOfPossession");
    match (stub, pkix, pop) {
        (Err(e), _, _) => c.invalid("spec.stubPKCS10Request", "", &e),
        (_, Err(e), _) => c.invalid("spec.pkixPublicKey", "", &e),
        (_, _, Err(e)) => c.invalid("spec.proofOfPossession", "", &e),
        (Ok(Some(stub)), pkix, pop) => {
            if pkix.as_ref().is_ok_and(Option::is_some) {
                c.forbidden(
                    "spec.pkixPublicKey",
                    "must be empty when stubPKCS10Request is set",
                );
            }
            if pop.as_ref().is_ok_and(Option::is_some) {
                c.forbidden(
                    "spec.proofOfPossession",
                    "must be empty when stubPKCS10Request is set",
                );
            }
            if let Err(e) = check_stub(&stub) {
                c.invalid("spec.stubPKCS10Request", "<stub>", &e);
            }
        }
        (Ok(None), Ok(pkix), Ok(pop)) => {
            if def.version == "v1" {
                c.required("spec.stubPKCS10Request");
            } else {
                match (pkix, pop) {
                    (None, _) => c.required(if release.has_stub() {
                        "spec.stubPKCS10Request"
                    } else {
                        "spec.pkixPublicKey"
                    }),
                    (Some(_), None) => c.required("spec.proofOfPossession"),
                    (Some(k), Some(p)) => {
                        if k.len() > MAX_KEY_FIELD {
                            c.push(
                                "spec.pkixPublicKey",
                                "FieldValueTooLong",
                                format!("Too long: may not be more than {MAX_KEY_FIELD} bytes"),
                            );
                        } else if p.len() > MAX_KEY_FIELD {
                            c.push(
                                "spec.proofOfPossession",
                                "FieldValueTooLong",
                                format!("Too long: may not be more than {MAX_KEY_FIELD} bytes"),
                            );
                        } else {
                            match crypto::parse_spki(&k) {
                                Err(e) => c.invalid("spec.pkixPublicKey", "<key>", &e),
                                Ok(spki) => {
                                    if let Err(e) = crypto::key_type(&spki) {
                                        c.invalid("spec.pkixPublicKey", "<key>", &e);
                                    } else if let Err(e) = crypto::verify_pop(&spki, &pod_uid, &p) {
                                        c.invalid("spec.proofOfPossession", "<proof>", &e);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    c.finish()?;
    if let Some(id) = id
        && let Some(node) = id.node_name()
    {
        node_restriction(release, store, def, ns, obj, id, node)?;
    }
    Ok(())
}

/// The stub CSR: parses, self-signature verifies, accepted key type, and empty (no subject, no
/// requested extensions).
fn check_stub(der: &[u8]) -> Result<(), String> {
    let (rest, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(der)
        .map_err(|e| format!("the stub PKCS#10 request does not parse: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing data after the stub PKCS#10 request".into());
    }
    crypto::key_type(&csr.certification_request_info.subject_pki)?;
    crypto::verify_csr(&csr)?;
    if csr
        .certification_request_info
        .subject
        .iter()
        .next()
        .is_some()
    {
        return Err("the stub PKCS#10 request must be empty (it has a subject)".into());
    }
    if csr
        .requested_extensions()
        .is_some_and(|mut e| e.next().is_some())
    {
        return Err("the stub PKCS#10 request must be empty (it requests extensions)".into());
    }
    Ok(())
}

/// NodeRestriction on create by `system:node:<node>`.
fn node_restriction(
    release: Release,
    store: &Store,
    def: &ResourceDef,
    ns: &str,
    obj: &Value,
    id: &Identity,
    node: &str,
) -> Result<(), ApiError> {
    let name = name_of(obj).to_string();
    let deny = |why: String| Err(forbidden(def, &name, &why));
    let spec = |f: &str| str_at(obj, &format!("/spec/{f}")).to_string();
    if spec("nodeName") != node {
        return deny(format!(
            "node {node:?} can only create PodCertificateRequests naming itself in spec.nodeName (got {:?})",
            spec("nodeName")
        ));
    }
    let get = |plural: &str, ns: &str, n: &str| {
        store
            .lookup("", "v1", plural)
            .and_then(|d| store.get_value(&d, ns, n))
    };
    let uid = |v: &Value| str_at(v, "/metadata/uid").to_string();
    match get("nodes", "", node) {
        None => return deny(format!("node {node:?} does not exist")),
        Some(n) if uid(&n) != spec("nodeUID") => {
            return deny(format!(
                "spec.nodeUID {:?} is not the UID of node {node:?}",
                spec("nodeUID")
            ));
        }
        Some(_) => {}
    }
    let pod_name = spec("podName");
    let Some(pod) = get("pods", ns, &pod_name) else {
        return deny(format!("pod {ns}/{pod_name} does not exist"));
    };
    if uid(&pod) != spec("podUID") {
        return deny(format!(
            "spec.podUID {:?} is not the UID of pod {ns}/{pod_name}",
            spec("podUID")
        ));
    }
    if str_at(&pod, "/spec/nodeName") != node {
        return deny(format!("pod {ns}/{pod_name} is not bound to node {node:?}"));
    }
    if pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return deny(format!("pod {ns}/{pod_name} is a mirror pod"));
    }
    let pod_sa = match str_at(&pod, "/spec/serviceAccountName") {
        "" => "default".to_string(),
        s => s.to_string(),
    };
    if spec("serviceAccountName") != pod_sa {
        return deny(format!(
            "spec.serviceAccountName {:?} is not the service account of pod {ns}/{pod_name} ({pod_sa:?})",
            spec("serviceAccountName")
        ));
    }
    match get("serviceaccounts", ns, &pod_sa) {
        None => return deny(format!("service account {ns}/{pod_sa} does not exist")),
        Some(sa) if uid(&sa) != spec("serviceAccountUID") => {
            return deny(format!(
                "spec.serviceAccountUID {:?} is not the UID of service account {ns}/{pod_sa}",
                spec("serviceAccountUID")
            ));
        }
        Some(_) => {}
    }
    if release >= Release::V1_37 {
        let signer = spec("signerName");
        let named = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.pointer("/projected/sources").and_then(Value::as_array))
            .flatten()
            .any(|s| {
                s.pointer("/podCertificate/signerName")
                    .and_then(Value::as_str)
                    == Some(signer.as_str())
            });
        if !named && !may(store, Some(id), "request-podcertificate-signer", &signer) {
            return deny(format!(
                "pod {ns}/{pod_name} has no podCertificate projected volume source for signer {signer:?}"
            ));
        }
    }
    Ok(())
}

const TERMINAL: [&str; 3] = ["Issued", "Denied", "Failed"];

fn terminal_of(v: &Value) -> Option<String> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|c| c.get("type").and_then(Value::as_str))
        .find(|t| TERMINAL.contains(t))
        .map(str::to_string)
}

/// Update: immutable spec on the main resource; the status rules and `sign` on `/status`.
pub fn update(
    store: &Store,
    def: &ResourceDef,
    old: &Value,
    new: &mut Value,
    id: Option<&Identity>,
    sub: Option<&str>,
) -> Result<(), ApiError> {
    let name = name_of(old).to_string();
    // Writes through v1 do not carry the v1beta1-only key fields: keep the stored ones.
    if !new.get("spec").is_some_and(Value::is_object) {
        new["spec"] = json!({});
    }
    if def.version == "v1" {
        for k in ["pkixPublicKey", "proofOfPossession"] {
            if let Some(v) = old.pointer(&format!("/spec/{k}")) {
                new["spec"][k] = v.clone();
            }
        }
    }
    if new
        .pointer("/spec/stubPKCS10Request")
        .is_some_and(|v| v.as_str() == Some(""))
        && old.pointer("/spec/stubPKCS10Request").is_none()
        && let Some(s) = new.get_mut("spec").and_then(Value::as_object_mut)
    {
        s.remove("stubPKCS10Request");
    }
    if sub.is_none() {
        if new.get("spec") != old.get("spec") {
            return Err(super::invalid(
                def,
                &name,
                "spec",
                "FieldValueInvalid",
                "Invalid value: spec is immutable".into(),
            ));
        }
        return Ok(());
    }
    if new.get("status") == old.get("status") {
        return Ok(());
    }
    let signer = str_at(old, "/spec/signerName").to_string();
    if let Some(t) = terminal_of(old) {
        return Err(super::invalid(
            def,
            &name,
            "status",
            "FieldValueForbidden",
            format!("Forbidden: status is immutable once the request has a {t} condition"),
        ));
    }
    let mut c = Causes::new(def, old);
    let conds = new
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Compiled once, as kube-apiserver's validation does at start: compiling it per write cost
    // more than the rest of the status rules.
    static REASON: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new("^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$").expect("static regex")
    });
    let reason_re = &*REASON;
    let mut seen = std::collections::BTreeSet::new();
    let mut terminal = Vec::new();
    for (i, cond) in conds.iter().enumerate() {
        let f = |k: &str| format!("status.conditions[{i}].{k}");
        let t = cond.get("type").and_then(Value::as_str).unwrap_or_default();
        if !TERMINAL.contains(&t) {
            c.push(
                &f("type"),
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: {t:?}: supported values: \"Denied\", \"Failed\", \"Issued\""
                ),
            );
        } else {
            terminal.push(t);
        }
        if !seen.insert(t) {
            c.push(
                &f("type"),
                "FieldValueDuplicate",
                format!("Duplicate value: {t:?}"),
            );
        }
        if cond.get("status").and_then(Value::as_str) != Some("True") {
            c.push(
                &f("status"),
                "FieldValueNotSupported",
                "Unsupported value: supported values: \"True\"".into(),
            );
        }
        let reason = cond
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if reason.is_empty() {
            c.required(&f("reason"));
        } else if reason.len() > 1024 || !reason_re.is_match(reason) {
            c.invalid(&f("reason"), reason, "a condition reason must start with alphabetic character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_'");
        }
        if cond
            .get("message")
            .and_then(Value::as_str)
            .map_or(0, str::len)
            > 32 * 1024
        {
            c.push(
                &f("message"),
                "FieldValueTooLong",
                "Too long: may not be more than 32768 bytes".into(),
            );
        }
        if cond
            .get("lastTransitionTime")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .is_none()
        {
            c.required(&f("lastTransitionTime"));
        }
    }
    if terminal.len() > 1 {
        c.invalid(
            "status.conditions",
            "",
            "at most one of Issued, Denied and Failed may be set",
        );
    }
    let st = new.get("status").cloned().unwrap_or(json!({}));
    let other_fields: Vec<&str> = [
        "certificateChain",
        "notBefore",
        "notAfter",
        "beginRefreshAt",
    ]
    .into_iter()
    .filter(|k| {
        st.get(*k)
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
    })
    .collect();
    match terminal.first().copied() {
        None => c.forbidden(
            "status",
            "status is immutable unless transitioning to Issued, Denied, or Failed",
        ),
        Some("Denied" | "Failed") => {
            for k in other_fields {
                c.forbidden(
                    &format!("status.{k}"),
                    "must be empty when the request is Denied or Failed",
                );
            }
        }
        Some(_) => issued(&mut c, old, &st),
    }
    c.finish()?;
    // The status strategy, once the status validates: changing it needs `sign` on the signer,
    // refused as an invalid field (422), not by an admission plugin (403).
    if !may(store, id, "sign", &signer) {
        let user = id.map(|i| i.user.as_str()).unwrap_or_default();
        return Err(super::invalid(
            def,
            &name,
            "spec.signerName",
            "FieldValueForbidden",
            format!("Forbidden: User {user:?} is not permitted to \"sign\" for signer {signer:?}"),
        ));
    }
    Ok(())
}

/// The rules for a transition to Issued.
fn issued(c: &mut Causes<'_>, old: &Value, st: &Value) {
    let chain = st
        .get("certificateChain")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let time = |k: &str| st.get(k).and_then(Value::as_str).and_then(parse_time);
    let (nb, na, refresh) = (time("notBefore"), time("notAfter"), time("beginRefreshAt"));
    for (k, v) in [
        ("notBefore", nb),
        ("notAfter", na),
        ("beginRefreshAt", refresh),
    ] {
        if v.is_none() {
            c.required(&format!("status.{k}"));
        }
    }
    if chain.is_empty() {
        c.required("status.certificateChain");
        return;
    }
    if chain.len() > MAX_CHAIN {
        c.push(
            "status.certificateChain",
            "FieldValueTooLong",
            format!("Too long: may not be more than {MAX_CHAIN} bytes"),
        );
        return;
    }
    let blocks = match pem_blocks(chain) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => {
            c.invalid(
                "status.certificateChain",
                "<chain>",
                "must contain at least one PEM block",
            );
            return;
        }
        Err(e) => {
            c.invalid("status.certificateChain", "<chain>", &e);
            return;
        }
    };
    // The leaf is parsed once and kept; the intermediates repeat from answer to answer.
    let mut leaf = None;
    for (i, b) in blocks.iter().enumerate() {
        if b.tag != "CERTIFICATE" {
            c.invalid(
                "status.certificateChain",
                "<chain>",
                &format!("PEM block {i} is {:?}, not CERTIFICATE", b.tag),
            );
            return;
        }
        let parses = if i == 0 {
            match super::go_x509::parse_certificate(&b.der) {
                Ok(cert) => {
                    leaf = Some(cert);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else if certificate_parses(&b.der) {
            Ok(())
        } else {
            Err("it is not an X.509 certificate Go reads".into())
        };
        if let Err(why) = parses {
            c.invalid(
                "status.certificateChain",
                "<chain>",
                &format!("certificate {i} of the chain does not parse as valid X.509 ({why})"),
            );
            return;
        }
    }
    let Some(leaf) = leaf else {
        return;
    };
    // Go read the subjectAltName extension (go_x509); x509-parser reads it too or the leaf is
    // refused, never skipped.
    let san = match leaf.subject_alternative_name() {
        Ok(san) => san,
        Err(e) => {
            c.invalid(
                "status.certificateChain",
                "<chain>",
                &format!("the leaf's subjectAltName extension does not parse: {e}"),
            );
            return;
        }
    };
    if let Some(san) = san {
        for gn in &san.value.general_names {
            match gn {
                x509_parser::extensions::GeneralName::DNSName(d)
                    if d.is_empty()
                        || d.contains("..")
                        || d.starts_with('.')
                        || d.ends_with('.') =>
                {
                    c.invalid(
                        "status.certificateChain",
                        d,
                        "the leaf has an invalid DNS name",
                    );
                }
                x509_parser::extensions::GeneralName::RFC822Name(m)
                    if m.split_once('@')
                        .is_none_or(|(l, d)| l.is_empty() || d.is_empty()) =>
                {
                    c.invalid(
                        "status.certificateChain",
                        m,
                        "the leaf has an invalid email address",
                    );
                }
                _ => {}
            }
        }
    }
    if requested_key(old).as_deref() != Some(leaf.public_key().raw) {
        c.invalid(
            "status.certificateChain",
            "<chain>",
            "the leaf's public key is not the requested public key",
        );
    }
    let leaf_nb = leaf.validity().not_before.timestamp();
    let leaf_na = leaf.validity().not_after.timestamp();
    if let Some(nb) = nb {
        if nb.as_second() != leaf_nb {
            c.invalid(
                "status.notBefore",
                &super::fmt_time(nb),
                "must equal the leaf certificate's NotBefore",
            );
        }
        // kube-apiserver's timeNear: strictly within 5 minutes of its clock (an open
        // interval, at the clock's full precision).
        let skew = (nb.as_nanosecond() - super::now_ts().as_nanosecond()).abs();
        if skew >= 300 * 1_000_000_000 {
            c.invalid(
                "status.notBefore",
                &super::fmt_time(nb),
                "must be within 5 minutes of the API server's clock",
            );
        }
    }
    if let Some(na) = na
        && na.as_second() != leaf_na
    {
        c.invalid(
            "status.notAfter",
            &super::fmt_time(na),
            "must equal the leaf certificate's NotAfter",
        );
    }
    let lifetime = leaf_na - leaf_nb;
    let max = old
        .pointer("/spec/maxExpirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(86400);
    if lifetime < 3600 {
        c.invalid(
            "status.certificateChain",
            "<chain>",
            &format!("the leaf lifetime ({lifetime}s) is shorter than 1 hour"),
        );
    } else if lifetime > max {
        c.invalid(
            "status.certificateChain",
            "<chain>",
            &format!(
                "the leaf lifetime ({lifetime}s) is longer than spec.maxExpirationSeconds ({max}s)"
            ),
        );
    }
    if let (Some(nb), Some(na), Some(r)) = (nb, na, refresh) {
        let r = r.as_second();
        if r < nb.as_second() + 600 || r > na.as_second() - 600 {
            c.invalid("status.beginRefreshAt", &super::fmt_time(jiff::Timestamp::from_second(r).unwrap_or_default()), "must be at least 10 minutes after notBefore and at least 10 minutes before notAfter");
        }
    }
}
