//! The project's custom resource types (CertificateRequest mirror, Issuer, ClusterIssuer) and
//! `firefly crds`; performs no I/O other than printing the generated YAML.

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
        source: serde_yaml::Error,
    },
}

/// Every CRD the project defines, in a stable order: CertificateRequest, Issuer, ClusterIssuer.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        CertificateRequest::crd(),
        Issuer::crd(),
        ClusterIssuer::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream (the content of `crds/firefly.yaml`).
///
/// # Errors
/// [`CrdError::Render`] if serialization fails (it does not for these types).
pub fn crds_yaml() -> Result<String, CrdError> {
    let mut out = String::new();
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let doc =
            serde_yaml::to_string(&crd).map_err(|source| CrdError::Render { name, source })?;
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
    fn certificate_request_crd_has_cert_manager_names_and_scope() {
        let crd = crd_json("certificaterequests.cert-manager.io");
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "cert-manager.io");
        assert_eq!(spec["scope"], "Namespaced");
        assert_eq!(spec["names"]["kind"], "CertificateRequest");
        assert_eq!(spec["names"]["plural"], "certificaterequests");
        assert_eq!(
            spec["names"]["shortNames"],
            serde_json::json!(["cr", "crs"])
        );
        assert_eq!(
            spec["names"]["categories"],
            serde_json::json!(["cert-manager"])
        );
        assert_eq!(spec["versions"][0]["name"], "v1");
        assert_eq!(
            spec["versions"][0]["subresources"]["status"],
            serde_json::json!({})
        );
    }

    #[test]
    fn certificate_request_schema_types_match_cert_manager() {
        let crd = crd_json("certificaterequests.cert-manager.io");
        let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
        let spec = &root["spec"];
        assert_eq!(
            spec["required"],
            serde_json::json!(["issuerRef", "request"])
        );
        assert_eq!(spec["properties"]["request"]["format"], "byte");
        assert_eq!(
            spec["properties"]["issuerRef"]["required"],
            serde_json::json!(["name"])
        );
        assert_eq!(spec["properties"]["isCA"]["type"], "boolean");
        let usages = spec["properties"]["usages"]["items"]["enum"]
            .as_array()
            .unwrap();
        assert!(usages.contains(&"client auth".into()) && usages.contains(&"server auth".into()));
        let status = &root["status"]["properties"];
        assert_eq!(status["certificate"]["format"], "byte");
        assert_eq!(status["ca"]["format"], "byte");
        assert_eq!(status["failureTime"]["format"], "date-time");
        let conditions = &status["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
        let item = &conditions["items"]["properties"];
        for field in [
            "type",
            "status",
            "reason",
            "message",
            "lastTransitionTime",
            "observedGeneration",
        ] {
            assert!(item.get(field).is_some(), "condition field {field} missing");
        }
    }

    #[test]
    fn certificate_request_printer_columns_follow_cert_manager() {
        let names: Vec<String> = columns(&crd_json("certificaterequests.cert-manager.io"))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "Approved",
                "Denied",
                "Ready",
                "Issuer",
                "Requester",
                "Status",
                "Age"
            ]
        );
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
            for field in ["defaultPolicyName", "allowedRequesters", "trustDomain"] {
                assert!(spec["properties"].get(field).is_some(), "{field} missing");
            }
        }
    }

    #[test]
    fn crds_yaml_is_three_documents() {
        let yaml = crds_yaml().unwrap();
        assert_eq!(yaml.matches("\n---\n").count() + 1, 3);
        assert!(yaml.starts_with("---\n"));
    }
}
