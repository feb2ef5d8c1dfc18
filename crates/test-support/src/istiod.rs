//! istiod as a registration authority over the Kubernetes CSR API (`EXTERNAL_CA=
//! ISTIOD_RA_KUBERNETES_API`), played exactly: its RBAC and ServiceAccount token, a CSR with
//! `generateName: csr-workload-`, its self-approval through `/approval`, a wait of at most 60 s
//! for the certificate, then deletion. Used by tests/kube_csr.rs and the demo.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

/// istiod's ServiceAccount as the API server names it in `spec.username`.
pub const ISTIOD_USERNAME: &str = "system:serviceaccount:istio-system:istiod";
/// The ClusterIssuer signer name the tests and the demo point istiod at (`K8S_SIGNER`).
pub const CLUSTER_SIGNER: &str = "clusterissuers.firefly.venafi.com/istio-ca";
/// The usages istiod puts on workload CSRs.
pub const WORKLOAD_USAGES: [&str; 4] = [
    "digital signature",
    "key encipherment",
    "server auth",
    "client auth",
];
/// The usages of istiod's own serving certificate.
pub const SERVING_USAGES: [&str; 3] = ["digital signature", "key encipherment", "server auth"];
/// How long istiod waits for a certificate (`certWatchTimeout`).
pub const CERT_WATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Grants `subject` the ClusterRole `name` with `rules` (stored straight, as an administrator's
/// `kubectl apply` would).
///
/// # Errors
/// kube-sim refused an object.
pub fn grant(
    sim: &kube_sim::KubeSim,
    name: &str,
    rules: Value,
    subject: Value,
) -> anyhow::Result<()> {
    sim.put_object(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name}, "rules": rules}),
    )
    .context("ClusterRole")?;
    sim.put_object(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [subject]}),
    )
    .context("ClusterRoleBinding")?;
    Ok(())
}

/// istiod's RBAC as its chart grants it (CSR create/get/list/watch/delete, `/approval` and
/// `/status` update, `approve` on our signer names) and a client with its ServiceAccount token.
///
/// # Errors
/// kube-sim refused an object, or the client could not be built.
pub async fn istiod_client(
    sim: &kube_sim::KubeSim,
) -> anyhow::Result<Api<CertificateSigningRequest>> {
    grant(
        sim,
        "istiod",
        json!([
            {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get", "list", "watch", "delete"]},
            {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval", "certificatesigningrequests/status"], "verbs": ["update"]},
            {"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["clusterissuers.firefly.venafi.com/*", "issuers.firefly.venafi.com/*"], "verbs": ["approve"]}
        ]),
        json!({"kind": "ServiceAccount", "name": "istiod", "namespace": "istio-system"}),
    )?;
    let token = sim.service_account_token("istio-system", "istiod")?;
    Ok(Api::all(sim.client_with_token(&token).await?))
}

/// A CSR as istiod creates it: `generateName: csr-workload-`, the agent's PEM request unchanged.
///
/// # Panics
/// Never for these inputs (the JSON is always a CSR).
pub fn csr(
    signer: &str,
    request_pem: &str,
    usages: &[&str],
    expiration_seconds: Option<i32>,
) -> CertificateSigningRequest {
    use base64::Engine as _;
    serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-workload-"},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(request_pem),
            "signerName": signer,
            "usages": usages,
            "expirationSeconds": expiration_seconds,
        },
    }))
    .expect("a CertificateSigningRequest")
}

/// Adds condition `type_` (`Approved` or `Denied`) through `/approval` as istiod does: a PUT of
/// the whole object (client-go `UpdateApproval`) with istiod's message.
///
/// # Errors
/// The read or the approval failed.
pub async fn set_approval(
    api: &Api<CertificateSigningRequest>,
    name: &str,
    type_: &str,
) -> anyhow::Result<()> {
    let obj = api.get(name).await.context("CSR read for approval")?;
    approve_held(api, obj, type_).await.map(drop)
}

/// [`set_approval`] on the copy the caller holds (the object its create returned), so the
/// approval costs one PUT and no read; 409 when the CSR changed since that copy.
///
/// # Errors
/// The object has no name, or the approval failed.
pub async fn approve_held(
    api: &Api<CertificateSigningRequest>,
    mut obj: CertificateSigningRequest,
    type_: &str,
) -> anyhow::Result<CertificateSigningRequest> {
    let name = obj.metadata.name.clone().context("a CSR without a name")?;
    let message = format!("CSR ({name}) for the certificate () is approved");
    obj.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: type_.to_owned(),
            status: "True".to_owned(),
            reason: Some(message.clone()),
            message: Some(message),
            ..Default::default()
        });
    api.replace_subresource("approval", &name, &PostParams::default(), &obj)
        .await
        .with_context(|| format!("{type_} of {name} through /approval"))
}

/// istiod's create then approval of one CSR, with no read: the approval is sent on the created
/// copy. Returns the generated name and the instant just before the approval was sent.
///
/// # Errors
/// Either API call failing.
pub async fn create_and_approve(
    api: &Api<CertificateSigningRequest>,
    request: &CertificateSigningRequest,
) -> anyhow::Result<(String, Instant)> {
    let created = crate::e2e::create_generated(api, request).await?;
    let name = created.metadata.name.clone().context("a generated name")?;
    let at = Instant::now();
    approve_held(api, created, "Approved").await?;
    Ok((name, at))
}

/// What istiod got for one CSR.
#[derive(Debug)]
pub struct Signed {
    /// The CSR's generated name.
    pub name: String,
    /// `spec.username` as the API server recorded it.
    pub requester: Option<String>,
    /// `status.certificate`: leaf, then intermediates.
    pub chain_pem: String,
    /// From just before the approval to the first read that showed the certificate.
    pub latency: Duration,
}

/// istiod's whole flow for one CSR: create, approve, wait (60 s at most), delete.
///
/// # Errors
/// Any call failed, or no certificate came within 60 s.
pub async fn sign(
    api: &Api<CertificateSigningRequest>,
    request: &CertificateSigningRequest,
) -> anyhow::Result<Signed> {
    let created = api
        .create(&PostParams::default(), request)
        .await
        .context("istiod creates the CSR")?;
    let name = created.metadata.name.clone().context("a generated name")?;
    let approved_at = Instant::now();
    set_approval(api, &name, "Approved").await?;
    let chain_pem = loop {
        let certificate = api
            .get(&name)
            .await
            .ok()
            .and_then(|c| c.status?.certificate);
        if let Some(c) = certificate {
            break String::from_utf8(c.0).context("status.certificate is not text")?;
        }
        if approved_at.elapsed() > CERT_WATCH_TIMEOUT {
            bail!("no certificate on {name} within istiod's {CERT_WATCH_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let latency = approved_at.elapsed();
    api.delete(&name, &DeleteParams::default())
        .await
        .context("istiod deletes the CSR")?;
    Ok(Signed {
        name,
        requester: created.spec.username,
        chain_pem,
        latency,
    })
}
