//! Pod certificates for the demo and the e2e bench: pods that project a `podCertificate` of one
//! signer, kube-sim's kubelets (`system:node:<n>`) that request them exactly as the kubelet does,
//! and a typed `PodCertificateRequest` (certificates.k8s.io/v1) the e2e tracker can watch.

use std::borrow::Cow;
use std::time::Instant;

use anyhow::Context as _;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_sim::kubelet::{KeyType, Kubelet, PodCertificate};
use serde_json::{Value, json};

use crate::e2e::{Outcome, Trackable, Watched};

/// The signer the demo and the bench configure: the shipped seed's `istio-mtls` policy (one hour,
/// P-256 or RSA-2048, an optional SPIFFE URI) serves pods too.
pub const SIGNER: &str = "firefly.venafi.com/istio-mtls";
/// The namespace of the demo's and the bench's pods.
pub const NAMESPACE: &str = "sandbox";

/// The `controller.podCertificates` block (indented for `controller:`) serving [`SIGNER`] under
/// policy `istio-mtls` for every namespace.
pub fn signer_config() -> String {
    format!(
        "    enabled: true\n    signers:\n      - signerName: {SIGNER}\n        policyName: istio-mtls\n        trustDomain: cluster.local\n        namespaces: [\"*\"]\n"
    )
}

/// A PodCertificateRequest as the v1 API serves it; spec and status kept as JSON (k8s-openapi
/// has no v1 type yet).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PodCertificateRequest {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// `spec`, as served.
    #[serde(default)]
    pub spec: Value,
    /// `status`, as served.
    #[serde(default)]
    pub status: Option<Value>,
}

impl kube::Resource for PodCertificateRequest {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "PodCertificateRequest".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "certificates.k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "podcertificaterequests".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Trackable for PodCertificateRequest {
    type Watched = PodCertificateRequestView;
}

/// What the e2e tracker decodes of a PodCertificateRequest: its name and resourceVersion, its
/// conditions and its certificate chain.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct PodCertificateRequestView {
    #[serde(default, deserialize_with = "crate::e2e::view_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    status: Option<PodCertificateRequestViewStatus>,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodCertificateRequestViewStatus {
    #[serde(default)]
    conditions: Option<Vec<PodCertificateRequestViewCondition>>,
    #[serde(default)]
    certificate_chain: Option<String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct PodCertificateRequestViewCondition {
    #[serde(default, rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

crate::e2e::view_resource!(PodCertificateRequestView, PodCertificateRequest);

impl Watched for PodCertificateRequestView {
    /// Issued on a true `Issued` condition; Failed on a true `Denied` or `Failed` one.
    fn outcome(&self) -> Outcome {
        let conditions = self.status.as_ref().and_then(|s| s.conditions.as_ref());
        let Some(c) = conditions.into_iter().flatten().find(|c| {
            c.status.as_deref() == Some("True")
                && matches!(c.type_.as_deref(), Some("Issued" | "Denied" | "Failed"))
        }) else {
            return Outcome::Open;
        };
        if c.type_.as_deref() == Some("Issued") {
            Outcome::Issued
        } else {
            Outcome::Failed {
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            }
        }
    }

    fn certificate_bytes(&self) -> Option<&[u8]> {
        self.status
            .as_ref()
            .and_then(|s| s.certificate_chain.as_deref())
            .filter(|c| !c.is_empty())
            .map(str::as_bytes)
    }
}

/// The node of pod `i` among `nodes`.
pub fn node_of(i: usize, nodes: usize) -> String {
    format!("node-{}", i % nodes.max(1))
}

/// Stores pods `pod-<i>` (i in `range`) in [`NAMESPACE`] (created when missing), bound to [`node_of`]`(i, nodes)`, each
/// running as ServiceAccount `workload-<i % 50>` and projecting a P-256 `podCertificate` of
/// [`SIGNER`] (NodeRestriction lets a node ask only for signers its pods name).
///
/// # Errors
/// kube-sim refused an object.
pub fn put_pods(
    sim: &kube_sim::KubeSim,
    range: std::ops::Range<usize>,
    nodes: usize,
) -> anyhow::Result<()> {
    if sim.object("", "namespaces", "", NAMESPACE).is_none() {
        sim.put_object(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        )
        .context("storing the namespace")?;
    }
    for i in range {
        let sa = format!("workload-{}", i % 50);
        if sim.object("", "serviceaccounts", NAMESPACE, &sa).is_none() {
            sim.put_object(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": sa, "namespace": NAMESPACE}}))
                .context("storing a ServiceAccount")?;
        }
        sim.put_object(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{i}"), "namespace": NAMESPACE},
            "spec": {
                "nodeName": node_of(i, nodes), "serviceAccountName": sa,
                "containers": [{"name": "app", "image": "registry.example/app:1"}],
                "volumes": [{"name": "svid", "projected": {"sources": [{"podCertificate": {
                    "signerName": SIGNER, "keyType": "ECDSAP256",
                    "credentialBundlePath": "credentialbundle.pem"}}]}}]}}))
            .context("storing a Pod")?;
    }
    Ok(())
}

/// The kubelets of `nodes` nodes (`node-0` …), each with its own node credentials.
///
/// # Errors
/// A Node could not be stored or a client not built.
pub async fn kubelets(sim: &kube_sim::KubeSim, nodes: usize) -> anyhow::Result<Vec<Kubelet>> {
    let mut out = Vec::with_capacity(nodes);
    for n in 0..nodes {
        out.push(sim.kubelet(&node_of(n, nodes)).await?);
    }
    Ok(out)
}

/// What one kubelet request left behind.
#[derive(Debug)]
pub struct Requested {
    /// The pod's index (`pod-<pod>`).
    pub pod: usize,
    /// The request's generated name.
    pub name: String,
    /// Just before the kubelet started (its reads of pod, ServiceAccount and node, then the
    /// create).
    pub started: Instant,
    /// Just before the create was sent (after the reads and the key generation): the start of
    /// "creation → Issued".
    pub sent: Instant,
    /// When the create was answered.
    pub created: Instant,
    /// The pod's private key (PKCS#8 DER), kept by the kubelet.
    pub key_pkcs8: Vec<u8>,
}

/// Pod `pod-<i>`'s kubelet creates its P-256 PodCertificateRequest for [`SIGNER`].
///
/// # Errors
/// The kubelet's reads or the create failed.
pub async fn request(kubelet: &Kubelet, i: usize) -> anyhow::Result<Requested> {
    let source = PodCertificate::new(SIGNER, KeyType::EcdsaP256);
    let started = Instant::now();
    let (created, key_pkcs8, sent) = kubelet
        .create_request_timed(NAMESPACE, &format!("pod-{i}"), &source)
        .await?;
    let created_at = Instant::now();
    let name = created
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .context("the created PodCertificateRequest has no name")?
        .to_owned();
    Ok(Requested {
        pod: i,
        name,
        started,
        sent,
        created: created_at,
        key_pkcs8,
    })
}

/// The SPIFFE ID the controller gives pod `pod-<i>` of [`put_pods`].
pub fn spiffe_id(i: usize) -> String {
    format!(
        "spiffe://cluster.local/ns/{NAMESPACE}/sa/workload-{}",
        i % 50
    )
}
