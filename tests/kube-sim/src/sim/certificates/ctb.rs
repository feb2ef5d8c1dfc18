//! ClusterTrustBundle (v1beta1, v1): the name rule for signer-linked bundles, immutable signer,
//! CA-only PEM, the 1 MiB limit and the `attest` check.

use super::{
    Causes, ResourceDef, Store, forbidden, is_dns_subdomain, may, name_of, pem_blocks, str_at,
};
use crate::sim::auth::Identity;
use crate::sim::status::ApiError;
use serde_json::Value;

const MAX_TRUST_BUNDLE: usize = 1024 * 1024;

/// Create (`old` None) or update.
pub fn write(
    store: &Store,
    def: &ResourceDef,
    old: Option<&Value>,
    obj: &mut Value,
    id: Option<&Identity>,
) -> Result<(), ApiError> {
    let name = name_of(obj).to_string();
    let signer = str_at(obj, "/spec/signerName").to_string();
    let mut c = Causes::new(def, obj);
    if let Some(old) = old {
        let was = str_at(old, "/spec/signerName");
        if was != signer {
            c.invalid("spec.signerName", &signer, "field is immutable");
        }
    } else if signer.is_empty() {
        if name.contains(':') {
            c.invalid(
                "metadata.name",
                &name,
                "ClusterTrustBundle without signer name must not have \":\" in its name",
            );
        }
    } else {
        if let Some(why) = super::signer_name_error(&signer) {
            c.invalid("spec.signerName", &signer, &why);
        }
        let prefix = format!("{}:", signer.replace('/', ":"));
        match name.strip_prefix(&prefix) {
            Some(rest) if is_dns_subdomain(rest) => {}
            _ => c.invalid(
                "metadata.name",
                &name,
                &format!(
                    "ClusterTrustBundle for signerName {signer} must be named with prefix {prefix} followed by a DNS subdomain"
                ),
            ),
        }
    }
    let bundle = str_at(obj, "/spec/trustBundle");
    if bundle.is_empty() {
        c.required("spec.trustBundle");
    } else if bundle.len() > MAX_TRUST_BUNDLE {
        c.push(
            "spec.trustBundle",
            "FieldValueTooLong",
            format!("Too long: may not be more than {MAX_TRUST_BUNDLE} bytes"),
        );
    } else if let Err(e) = check_bundle(bundle) {
        c.invalid("spec.trustBundle", "<value omitted>", &e);
    }
    c.finish()?;
    if !signer.is_empty() && !may(store, id, "attest", &signer) {
        return Err(forbidden(
            def,
            &name,
            &format!("user not permitted to attest for signerName {signer:?}"),
        ));
    }
    Ok(())
}

fn check_bundle(text: &str) -> Result<(), String> {
    let blocks = pem_blocks(text)?;
    if blocks.is_empty() {
        return Err("at least one trust anchor must be provided".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, b) in blocks.iter().enumerate() {
        if b.tag != "CERTIFICATE" {
            return Err(format!("entry {i} has bad block type: {:?}", b.tag));
        }
        if b.has_headers {
            return Err(format!("entry {i} has PEM block headers"));
        }
        let cert = super::go_x509::parse_certificate(&b.der)
            .map_err(|e| format!("entry {i} does not parse as X.509: {e}"))?;
        let ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !ca {
            return Err(format!("entry {i} does not have IsCA set"));
        }
        if !seen.insert(b.der.clone()) {
            return Err(format!("duplicate trust anchor (entry {i})"));
        }
    }
    Ok(())
}
