//! CertificateSigningRequest (`certificates.k8s.io/v1`): requester fields, request validation,
//! `/approval` (`approve` on the signer), `/status` (`sign` on the signer, certificate set once).

use super::{
    Causes, ResourceDef, Store, bytes_at, certificate_parses, forbidden, may, name_of, pem_blocks,
    str_at,
};
use crate::sim::auth::Identity;
use crate::sim::status::ApiError;
use serde_json::{Value, json};

const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// Create: validate the spec, set the requester fields from the caller, drop any status.
pub fn create(def: &ResourceDef, obj: &mut Value, id: Option<&Identity>) -> Result<(), ApiError> {
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    if let Some(id) = id {
        let spec = &mut obj["spec"];
        spec["username"] = json!(id.user);
        spec["uid"] = json!(id.uid);
        spec["groups"] = json!(id.groups);
        if id.extra.is_empty() {
            if let Some(s) = spec.as_object_mut() {
                s.remove("extra");
            }
        } else {
            spec["extra"] = json!(id.extra);
        }
    }
    let mut c = Causes::new(def, obj);
    match bytes_at(obj, "/spec/request") {
        Ok(None) => c.required("spec.request"),
        Err(e) => c.invalid("spec.request", "", &e),
        Ok(Some(pem)) => {
            if let Err(e) = check_request(&pem) {
                c.invalid("spec.request", "<request>", &e);
            }
        }
    }
    let signer = str_at(obj, "/spec/signerName");
    if signer.is_empty() {
        c.required("spec.signerName");
    } else if signer == "kubernetes.io/legacy-unknown" {
        c.push(
            "spec.signerName",
            "FieldValueNotSupported",
            format!("Unsupported value: {signer:?}: the legacy signerName is not allowed via this API version"),
        );
    } else if let Some(why) = super::signer_name_error(signer) {
        c.invalid("spec.signerName", signer, &why);
    }
    if let Some(e) = obj
        .pointer("/spec/expirationSeconds")
        .filter(|v| !v.is_null())
    {
        match e.as_i64() {
            Some(s) if s >= 600 => {}
            _ => c.invalid(
                "spec.expirationSeconds",
                &e.to_string(),
                "may not specify a duration less than 600 seconds (10 minutes)",
            ),
        }
    }
    match obj.pointer("/spec/usages").and_then(Value::as_array) {
        None => c.required("spec.usages"),
        Some(u) if u.is_empty() => c.required("spec.usages"),
        Some(u) => {
            let mut seen = std::collections::BTreeSet::new();
            for (i, x) in u.iter().enumerate() {
                let s = x.as_str().unwrap_or_default();
                if !USAGES.contains(&s) {
                    c.push(
                        &format!("spec.usages[{i}]"),
                        "FieldValueNotSupported",
                        format!("Unsupported value: {s:?}"),
                    );
                } else if !seen.insert(s) {
                    c.push(
                        &format!("spec.usages[{i}]"),
                        "FieldValueDuplicate",
                        format!("Duplicate value: {s:?}"),
                    );
                }
            }
        }
    }
    c.finish()
}

fn check_request(pem_bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(pem_bytes).map_err(|_| "the request is not PEM text")?;
    let blocks = pem_blocks(text)?;
    let b = blocks
        .iter()
        .find(|b| b.tag == "CERTIFICATE REQUEST")
        .ok_or("no CERTIFICATE REQUEST block")?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&b.der)
        .map_err(|e| format!("the certificate request does not parse: {e}"))?;
    super::crypto::verify_csr(&csr)
}

use x509_parser::prelude::FromDer as _;

fn conditions(v: &Value) -> Vec<Value> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn has_cond(conds: &[Value], t: &str) -> bool {
    conds
        .iter()
        .any(|c| c.get("type").and_then(Value::as_str) == Some(t))
}

/// Update of the object, `/status` or `/approval`.
pub fn update(
    store: &Store,
    def: &ResourceDef,
    old: &Value,
    new: &mut Value,
    id: Option<&Identity>,
    sub: Option<&str>,
) -> Result<(), ApiError> {
    // The spec never changes after create (kube-apiserver keeps the stored one silently).
    new["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
    let signer = str_at(old, "/spec/signerName").to_string();
    let name = name_of(old).to_string();
    let old_conds = conditions(old);
    let mut new_conds = conditions(new);
    let approval_types = ["Approved", "Denied"];
    // Approval condition types a /status write adds (refused by validation).
    let mut added: Vec<&str> = Vec::new();
    match sub {
        Some("approval") => {
            // Only Approved/Denied come from the write; the rest of the status is kept.
            let mut kept: Vec<Value> = old_conds
                .iter()
                .filter(|c| {
                    !approval_types
                        .contains(&c.get("type").and_then(Value::as_str).unwrap_or_default())
                })
                .cloned()
                .collect();
            kept.extend(new_conds.into_iter().filter(|c| {
                approval_types.contains(&c.get("type").and_then(Value::as_str).unwrap_or_default())
            }));
            new_conds = kept;
            let cert = old.pointer("/status/certificate").cloned();
            new["status"] = json!({});
            if let Some(cert) = cert {
                new["status"]["certificate"] = cert;
            }
            if !may(store, id, "approve", &signer) {
                return Err(forbidden(
                    def,
                    &name,
                    &format!("user not permitted to approve requests with signerName {signer:?}"),
                ));
            }
        }
        Some(_) => {
            // Approved/Denied only change through /approval: the status strategy keeps the
            // stored instances in place when the write has as many of them, and validation
            // refuses a write that adds some (removals are refused for every terminal type
            // below).
            for t in approval_types {
                let old_at = indices_of(&old_conds, t);
                let new_at = indices_of(&new_conds, t);
                if old_at.len() == new_at.len() {
                    for (n, o) in new_at.into_iter().zip(old_at) {
                        new_conds[n] = old_conds[o].clone();
                    }
                } else if new_at.len() > old_at.len() {
                    added.push(t);
                }
            }
        }
        None => {
            // The main resource does not change the status.
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            return Ok(());
        }
    }
    populate_condition_times(&mut new_conds, &old_conds);
    if !new.get("status").is_some_and(Value::is_object) {
        new["status"] = json!({});
    }
    new["status"]["conditions"] = json!(new_conds);
    if new_conds.is_empty()
        && let Some(s) = new["status"].as_object_mut()
    {
        s.remove("conditions");
    }
    let mut c = Causes::new(def, old);
    // Stored objects that already break a rule keep being writable (kube-apiserver's
    // compatibility options).
    let old_empty_type = old_conds.iter().any(|c| type_of(c).is_empty());
    let old_duplicates = {
        let mut types = std::collections::BTreeSet::new();
        !old_conds.iter().all(|c| types.insert(type_of(c)))
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, cond) in new_conds.iter().enumerate() {
        let t = type_of(cond);
        if t.is_empty() && !old_empty_type {
            c.required(&format!("status.conditions[{i}].type"));
        }
        if !seen.insert(t.to_string()) && !old_duplicates {
            c.push(
                &format!("status.conditions[{i}].type"),
                "FieldValueDuplicate",
                format!("Duplicate value: {t:?}"),
            );
        }
        // Approved, Denied and Failed may only be True; other types True, False or Unknown.
        let allowed: &[&str] = if matches!(t, "Approved" | "Denied" | "Failed") {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        let status = cond
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if status.is_empty() {
            c.required(&format!("status.conditions[{i}].status"));
        } else if !allowed.contains(&status) {
            let supported: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            c.push(
                &format!("status.conditions[{i}].status"),
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: {status:?}: supported values: {}",
                    supported.join(", ")
                ),
            );
        }
    }
    let both = |conds: &[Value]| has_cond(conds, "Approved") && has_cond(conds, "Denied");
    if both(&new_conds) && !both(&old_conds) {
        c.invalid(
            "status.conditions",
            "Approved",
            "Approved and Denied conditions are mutually exclusive",
        );
    }
    for t in ["Approved", "Denied", "Failed"] {
        if indices_of(&new_conds, t).len() < indices_of(&old_conds, t).len() {
            c.forbidden(
                "status.conditions",
                &format!("updates may not remove a condition of type {t:?}"),
            );
        }
    }
    for t in added {
        c.forbidden(
            "status.conditions",
            &format!("updates may not add a condition of type {t:?}"),
        );
    }
    let old_cert = bytes_at(old, "/status/certificate").ok().flatten();
    let new_cert = bytes_at(new, "/status/certificate");
    match &new_cert {
        Err(e) => c.invalid("status.certificate", "", e),
        Ok(new_cert) => {
            if old_cert.is_some() && *new_cert != old_cert {
                c.forbidden(
                    "status.certificate",
                    "updates may not modify existing certificate content",
                );
            } else if old_cert.is_none()
                && let Some(pem) = new_cert
                && let Err(e) = check_certificate(pem)
            {
                c.invalid("status.certificate", "<certificate data>", &e);
            }
        }
    }
    c.finish()?;
    // The signing admission plugin, after validation: a /status write that changes the
    // certificate or the conditions needs `sign` on the signer.
    let changed = new_cert.as_ref().ok() != Some(&old_cert) || new_conds != old_conds;
    if sub == Some("status") && changed && !may(store, id, "sign", &signer) {
        return Err(forbidden(
            def,
            &name,
            &format!("user not permitted to sign requests with signerName {signer:?}"),
        ));
    }
    Ok(())
}

/// A condition's type, or `""`.
fn type_of(c: &Value) -> &str {
    c.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// The positions of the conditions of type `t`.
fn indices_of(conds: &[Value], t: &str) -> Vec<usize> {
    conds
        .iter()
        .enumerate()
        .filter(|(_, c)| c.get("type").and_then(Value::as_str) == Some(t))
        .map(|(i, _)| i)
        .collect()
}

/// The status strategies' timestamps: a missing `lastUpdateTime` is now; a missing
/// `lastTransitionTime` is the stored one of a condition with the same type and status, else now.
fn populate_condition_times(conds: &mut [Value], old: &[Value]) {
    let now = super::fmt_time(super::now_ts());
    let unset = |c: &Value, k: &str| c.get(k).is_none_or(|v| v.is_null() || v == "");
    for c in conds.iter_mut() {
        if unset(c, "lastUpdateTime") {
            c["lastUpdateTime"] = json!(now);
        }
        if unset(c, "lastTransitionTime") {
            let kept = old.iter().find(|o| {
                o.get("type") == c.get("type")
                    && o.get("status") == c.get("status")
                    && !unset(o, "lastTransitionTime")
            });
            c["lastTransitionTime"] = kept
                .and_then(|o| o.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(now));
        }
    }
}

/// `status.certificate`: at least one CERTIFICATE block, no headers, every block parses.
fn check_certificate(pem_bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(pem_bytes).map_err(|_| "not PEM text")?;
    let blocks = pem_blocks(text)?;
    if blocks.is_empty() {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    for (i, b) in blocks.iter().enumerate() {
        if b.tag != "CERTIFICATE" {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                b.tag
            ));
        }
        if b.has_headers {
            return Err("no PEM block headers are permitted".into());
        }
        // The leaf is new with every answer; the intermediates after it repeat. A block may
        // hold several certificates back to back (Go's `x509.ParseCertificates`).
        if i == 0 || !certificate_parses(&b.der) {
            match super::go_x509::parse_certificates(&b.der) {
                Err(e) => return Err(format!("a certificate does not parse: {e}")),
                Ok(0) => {
                    return Err("found CERTIFICATE PEM block containing 0 certificates".into());
                }
                Ok(_) => {}
            }
        }
    }
    Ok(())
}
