//! kube-sim as every environment starts it: a fresh in-memory API server on loopback with our CRDs
//! (rendered by `firefly::crd`, as `firefly crds` prints them) and the namespaces a suite needs.

use anyhow::Context as _;
use kube_sim::{KubeSim, SimOptions};

/// Starts kube-sim, installs our CRDs and creates `namespaces`.
///
/// # Errors
/// kube-sim failing to start, the CRDs failing to render or install, a namespace refused.
pub async fn start_sim(namespaces: &[&str]) -> anyhow::Result<KubeSim> {
    let sim = KubeSim::start(SimOptions::default())
        .await
        .context("starting kube-sim")?;
    let crds = firefly::crd::crds_yaml().context("rendering the CRDs")?;
    sim.install_crds_yaml(&crds)
        .await
        .context("installing the CRDs into kube-sim")?;
    for ns in namespaces {
        sim.ensure_namespace(ns)
            .with_context(|| format!("creating namespace {ns}"))?;
    }
    Ok(sim)
}
