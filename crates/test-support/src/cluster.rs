//! kube-sim as every environment starts it: a fresh in-memory API server on loopback with
//! cert-manager's CertificateRequest CRD as cert-manager publishes it, our CRDs (rendered by
//! `firefly::crd`, as `firefly crds` prints them) and the namespaces a suite needs.

use anyhow::Context as _;
use kube_sim::{KubeSim, SimOptions};

/// Starts kube-sim, installs cert-manager's CertificateRequest CRD and ours, and creates
/// `namespaces`.
///
/// # Errors
/// As [`start_sim_with`].
pub async fn start_sim(namespaces: &[&str]) -> anyhow::Result<KubeSim> {
    start_sim_with(SimOptions::default(), namespaces).await
}

/// [`start_sim`] with kube-sim's options given.
///
/// # Errors
/// As [`start_sim`].
pub async fn start_sim_with(options: SimOptions, namespaces: &[&str]) -> anyhow::Result<KubeSim> {
    let sim = KubeSim::start(options).await.context("starting kube-sim")?;
    // What the controller writes to CertificateRequests is judged by upstream's schema.
    sim.install_cert_manager_crds()
        .await
        .context("installing cert-manager's CertificateRequest CRD into kube-sim")?;
    let crds = firefly::crd::crds_yaml().context("rendering the CRDs")?;
    sim.install_crds_yaml(&crds)
        .await
        .context("installing our CRDs into kube-sim")?;
    for ns in namespaces {
        sim.ensure_namespace(ns)
            .with_context(|| format!("creating namespace {ns}"))?;
    }
    Ok(sim)
}

/// The `spec.holderIdentity` of Lease `namespace`/`name` as stored (`None`: no such Lease, or no
/// holder field).
pub fn lease_holder(sim: &KubeSim, namespace: &str, name: &str) -> Option<String> {
    sim.object("coordination.k8s.io", "leases", namespace, name)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}
