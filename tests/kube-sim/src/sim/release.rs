//! Kubernetes releases: what `/version` reports and which `certificates.k8s.io` versions (and
//! PodCertificateRequest fields) are served; plus the release-independent built-ins added with
//! identities (Nodes, access reviews).

use super::store::{Admission, Builtin, Store, b};
use serde_json::{Value, json};
use std::sync::Arc;

/// An emulated Kubernetes minor release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum Release {
    /// 1.35: PodCertificateRequest v1beta1 with `pkixPublicKey` + `proofOfPossession`, no stub.
    V1_35,
    /// 1.36: PodCertificateRequest v1beta1 with `stubPKCS10Request`.
    V1_36,
    /// 1.37: PodCertificateRequest and ClusterTrustBundle v1 (v1beta1 only with runtime-config).
    #[default]
    V1_37,
}

impl Release {
    /// Parse `1.35`, `1.36` or `1.37` (a leading `v` is accepted).
    ///
    /// # Errors
    /// Any other value, with the accepted ones named.
    pub fn parse(s: &str) -> anyhow::Result<Release> {
        match s.trim().trim_start_matches('v') {
            "1.35" => Ok(Release::V1_35),
            "1.36" => Ok(Release::V1_36),
            "1.37" => Ok(Release::V1_37),
            other => anyhow::bail!(
                "unsupported Kubernetes release {other:?}: kube-sim emulates 1.35, 1.36 and 1.37"
            ),
        }
    }

    /// The minor version number.
    pub fn minor(self) -> u32 {
        match self {
            Release::V1_35 => 35,
            Release::V1_36 => 36,
            Release::V1_37 => 37,
        }
    }

    /// `v1.N.0-kube-sim`.
    pub fn git_version(self) -> String {
        format!("v1.{}.0-kube-sim", self.minor())
    }

    /// The `/version` document.
    pub fn version_doc(self) -> Value {
        json!({"major": "1", "minor": self.minor().to_string(), "gitVersion": self.git_version(), "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64"})
    }

    /// Whether PodCertificateRequest v1beta1 has `stubPKCS10Request` (1.36+).
    pub fn has_stub(self) -> bool {
        self >= Release::V1_36
    }
}

/// Parse `--runtime-config` values: only `certificates.k8s.io/v1beta1=true|false` is understood.
///
/// # Errors
/// Any other key or value, named.
pub fn parse_runtime_config(items: &[String]) -> anyhow::Result<bool> {
    let mut v1beta1 = false;
    for item in items.iter().flat_map(|i| i.split(',')) {
        let (k, v) = item.split_once('=').unwrap_or((item, "true"));
        anyhow::ensure!(
            k.trim() == "certificates.k8s.io/v1beta1",
            "unsupported --runtime-config key {k:?}: kube-sim understands only certificates.k8s.io/v1beta1"
        );
        v1beta1 = match v.trim() {
            "true" => true,
            "false" => false,
            other => anyhow::bail!("--runtime-config {k}: {other:?} is not true or false"),
        };
    }
    Ok(v1beta1)
}

/// Register the built-ins that depend on identities and on the release.
pub fn register(
    store: &Store,
    release: Release,
    v1beta1: bool,
    pod_certificate_requests: bool,
    cluster_trust_bundles: bool,
    convert: Arc<dyn Admission>,
) {
    const CERTS: &str = "certificates.k8s.io";
    store.add_builtin(
        &b("", "v1", "nodes", "Node", false, true, &["no"]),
        "v1",
        None,
    );
    let schema =
        |version, plural| super::certificates::schemas::apply_schema(release, version, plural);
    store.add_typed_builtin(
        &b(
            CERTS,
            "v1",
            "certificatesigningrequests",
            "CertificateSigningRequest",
            false,
            true,
            &["csr"],
        ),
        "v1",
        None,
        schema("v1", "certificatesigningrequests").as_ref(),
    );
    let beta_served = release < Release::V1_37 || v1beta1;
    let v1_served = release >= Release::V1_37;
    // Objects are stored in the widest shape (v1beta1 keeps the legacy key fields) and converted
    // on the way out, so one object is seen through every served version.
    let storage = if beta_served { "v1beta1" } else { "v1" };
    for (plural, kind, namespaced, status, short) in [
        (
            "podcertificaterequests",
            "PodCertificateRequest",
            true,
            true,
            &["pcr"][..],
        ),
        (
            "clustertrustbundles",
            "ClusterTrustBundle",
            false,
            false,
            &["ctb"][..],
        ),
    ] {
        if plural == "podcertificaterequests" && !pod_certificate_requests {
            continue;
        }
        if plural == "clustertrustbundles" && !cluster_trust_bundles {
            continue;
        }
        if v1_served {
            store.add_typed_builtin(
                &Builtin {
                    group: CERTS,
                    version: "v1",
                    plural,
                    kind,
                    namespaced,
                    status,
                    short,
                },
                storage,
                Some(convert.clone()),
                schema("v1", plural).as_ref(),
            );
        }
        if beta_served {
            store.add_typed_builtin(
                &Builtin {
                    group: CERTS,
                    version: "v1beta1",
                    plural,
                    kind,
                    namespaced,
                    status,
                    short,
                },
                storage,
                Some(convert.clone()),
                schema("v1beta1", plural).as_ref(),
            );
        }
    }
    store.add_builtin(
        &b(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            false,
            false,
            &[],
        ),
        "v1",
        None,
    );
    store.add_builtin(
        &b(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            false,
            false,
            &[],
        ),
        "v1",
        None,
    );
    store.add_builtin(
        &b(
            "authentication.k8s.io",
            "v1",
            "selfsubjectreviews",
            "SelfSubjectReview",
            false,
            false,
            &[],
        ),
        "v1",
        None,
    );
}

/// Resources that answer a create without storing anything.
pub fn is_review(group: &str, plural: &str) -> bool {
    matches!(
        (group, plural),
        (
            "authorization.k8s.io",
            "subjectaccessreviews" | "selfsubjectaccessreviews"
        ) | ("authentication.k8s.io", "selfsubjectreviews")
    )
}
