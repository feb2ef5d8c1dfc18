//! The project's custom resource types (CertificateRequest mirror, Issuer, ClusterIssuer) and
//! `firefly crds`; performs no I/O other than printing the generated YAML.
//!
//! `firefly crds` prints only the project's own CRDs. cert-manager's CertificateRequest CRD comes
//! from cert-manager: the Rust mirror here is for reading and writing requests, and its derived CRD
//! is never published (it would replace cert-manager's on `kubectl apply`).

pub mod certificate_request;
pub mod issuer;

use std::process::ExitCode;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use certificate_request::{
    CertificateRequest, CertificateRequestCondition, CertificateRequestSpec,
    CertificateRequestStatus, IssuerRef,
};
pub use issuer::{ClusterIssuer, ClusterIssuerSpec, Issuer, IssuerSpec, IssuerStatus};

/// Annotation naming the TLSPC policy a request is signed under.
pub const POLICY_NAME_ANNOTATION: &str = "firefly.venafi.com/policy-name";
/// Annotation istio-csr sets with the identities (comma-joined) the request is for.
pub const IDENTITIES_ANNOTATION: &str = "istio.cert-manager.io/identities";

/// Errors of CRD generation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrdError {
    /// A generated CRD could not be rendered as YAML.
    #[error("CRD {name} could not be rendered as YAML: {source}")]
    Render {
        /// The CRD's metadata.name.
        name: String,
        /// The serializer's error.
        source: serde_saphyr::ser::Error,
    },
}

/// Every CRD the project owns, in a stable order: Issuer, ClusterIssuer, each with an optional
/// `spec` ([`issuer::with_optional_spec`]). cert-manager's CertificateRequest is cert-manager's
/// to install, never ours.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        issuer::with_optional_spec(Issuer::crd()),
        issuer::with_optional_spec(ClusterIssuer::crd()),
    ]
}

/// The CRDs as one multi-document YAML stream (the content of `crds/firefly.yaml`).
///
/// # Errors
/// [`CrdError::Render`] if serialization fails (it does not for these types).
pub fn crds_yaml() -> Result<String, CrdError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    // Long single-line descriptions stay one plain line each (no folding); multi-line ones are
    // literal blocks. The output is then the same text serde_yaml printed.
    options.folded_wrap_chars = usize::MAX;
    let mut out = String::new();
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let doc = serde_saphyr::to_string_with_options(&crd, options.clone())
            .map_err(|source| CrdError::Render { name, source })?;
        out.push_str("---\n");
        out.push_str(&doc);
    }
    Ok(out)
}

/// `firefly crds`: prints every CRD as multi-document YAML on standard output.
///
/// # Errors
/// Rendering errors (see [`crds_yaml`]).
pub fn print_crds() -> anyhow::Result<ExitCode> {
    print!("{}", crds_yaml()?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn crd_json(name: &str) -> Value {
        let crd = crds()
            .into_iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no CRD named {name}"));
        serde_json::to_value(crd).unwrap()
    }

    fn columns(crd: &Value) -> Vec<(String, String)> {
        crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["jsonPath"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn issuers_are_firefly_v1alpha1_with_ready_columns() {
        for (name, scope) in [
            ("issuers.firefly.venafi.com", "Namespaced"),
            ("clusterissuers.firefly.venafi.com", "Cluster"),
        ] {
            let crd = crd_json(name);
            assert_eq!(crd["spec"]["group"], "firefly.venafi.com");
            assert_eq!(crd["spec"]["scope"], scope);
            assert_eq!(crd["spec"]["versions"][0]["name"], "v1alpha1");
            let names: Vec<String> = columns(&crd).into_iter().map(|(n, _)| n).collect();
            assert_eq!(names, ["Ready", "Reason", "Message", "Age"]);
            let spec =
                &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
            assert!(
                spec.get("required").is_none(),
                "issuer spec fields must all be optional"
            );
            for field in [
                "defaultPolicyName",
                "allowedRequesters",
                "allowedPolicies",
                "trustDomain",
            ] {
                assert!(spec["properties"].get(field).is_some(), "{field} missing");
            }
        }
    }

    #[test]
    fn crds_yaml_holds_only_the_firefly_issuer_crds() {
        let yaml = crds_yaml().unwrap();
        assert_eq!(yaml.matches("\n---\n").count() + 1, 2);
        assert!(yaml.starts_with("---\n"));
        let names: Vec<String> = crds().into_iter().filter_map(|c| c.metadata.name).collect();
        assert_eq!(
            names,
            [
                "issuers.firefly.venafi.com",
                "clusterissuers.firefly.venafi.com"
            ]
        );
        assert!(
            !yaml.contains("cert-manager.io"),
            "cert-manager's CRDs come from cert-manager"
        );
    }
}
