//! The ClusterTrustBundle publisher: finds the served version by discovery, watches each signer's
//! bundles (field selector `spec.signerName`), and writes a bundle only when it is missing or
//! differs from the trust-anchor set; says in [`BundleStatus`] what stops it. Decides nothing
//! about the content itself (see [`super`]).
//!
//! # Guarantees
//! - No polling: the watch reports changes and deletions; an unchanged bundle costs no request
//!   beyond the watch. Retries after a failed write back off up to [`MAX_BACKOFF`].
//! - One server-side apply (field manager [`FIELD_MANAGER`], forced) per needed change.
//! - When the ClusterTrustBundle API is not served, the status says so and names the feature
//!   gate and runtime-config; discovery is asked again every [`REDISCOVER`].

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::watch;

use super::{BundleStatus, LABEL_KEY, LABEL_VALUE, Observed, bundle_name, needs_write};
use crate::rbac::{CERTIFICATES, KubeCall, Needs};

/// The API calls this module makes (see [`crate::rbac`]): one watch (list + watch) of
/// ClusterTrustBundles per signer, the server-side apply that creates or updates its bundle
/// (RBAC checks `create` when the apply creates it, `patch` always), and `attest` on the signer,
/// which the API server checks on every write of a signer-linked bundle. No `get`: the watch
/// answers reads. Discovery (`/apis/...`) needs no grant.
pub const KUBE_CALLS: &[KubeCall] = &[
    KubeCall::cluster(CERTIFICATES, "clustertrustbundles", "", "list").when(Needs::TrustBundles),
    KubeCall::cluster(CERTIFICATES, "clustertrustbundles", "", "watch").when(Needs::TrustBundles),
    KubeCall::cluster(CERTIFICATES, "clustertrustbundles", "", "create").when(Needs::TrustBundles),
    KubeCall::cluster(CERTIFICATES, "clustertrustbundles", "", "patch").when(Needs::TrustBundles),
    KubeCall::cluster(CERTIFICATES, "signers", "", "attest").when(Needs::TrustBundles),
];

/// Field manager of our writes.
pub const FIELD_MANAGER: &str = "firefly";
/// The API group of ClusterTrustBundles and PodCertificateRequests.
const GROUP: &str = "certificates.k8s.io";
/// Versions that serve ClusterTrustBundle, newest first (v1 from 1.37, v1beta1 on 1.33–1.36 or
/// with `--runtime-config`).
const VERSIONS: [&str; 2] = ["v1", "v1beta1"];
/// Longest pause between attempts after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often discovery is asked again while the API is absent (enabling it restarts the API
/// server, so there is no hurry).
pub const REDISCOVER: Duration = Duration::from_secs(300);
/// The topic of API-level problems in [`BundleStatus`].
const API_TOPIC: &str = "";

/// What the publisher maintains.
#[derive(Clone, Debug)]
pub struct PublisherSettings {
    /// Signer names with `clusterTrustBundle: true`, already validated.
    pub signers: Vec<String>,
    /// First pause after a failure (doubled up to [`MAX_BACKOFF`]).
    pub first_backoff: Duration,
    /// How long one bundle write may wait for the API server before it counts as failed
    /// ([`WRITE_TIMEOUT`]; tests shorten it).
    pub write_timeout: Duration,
}

/// The bound on one bundle write: the signer's loop waits for its write, so without it an
/// API server that never answers (a dead connection) would stop the bundle from following the
/// anchors or being restored until the client's 300 s read timeout.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl PublisherSettings {
    /// The settings for `signers`, with a 1 s first backoff and [`WRITE_TIMEOUT`].
    pub fn new(signers: Vec<String>) -> Self {
        PublisherSettings {
            signers,
            first_backoff: Duration::from_secs(1),
            write_timeout: WRITE_TIMEOUT,
        }
    }
}

/// Where ClusterTrustBundles are served, from discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// At this version (`v1` preferred).
    At(String),
    /// Not at all; whether PodCertificateRequests are (then pods get certificates but cannot
    /// project our roots, which is worth saying).
    Absent {
        /// PodCertificateRequest is served in some version.
        pod_certificates: bool,
    },
}

/// Asks discovery which version of `certificates.k8s.io` serves ClusterTrustBundle.
///
/// # Errors
/// A discovery call failing other than with 404.
pub async fn discover(client: &kube::Client) -> Result<Served, kube::Error> {
    let mut pod_certificates = false;
    let mut found = None;
    for version in VERSIONS {
        match client
            .list_api_group_resources(&format!("{GROUP}/{version}"))
            .await
        {
            Ok(list) => {
                let has = |plural: &str| list.resources.iter().any(|r| r.name == plural);
                pod_certificates |= has("podcertificaterequests");
                if found.is_none() && has("clustertrustbundles") {
                    found = Some(version.to_owned());
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(match found {
        Some(v) => Served::At(v),
        None => Served::Absent { pod_certificates },
    })
}

/// The readiness detail for an absent API.
pub fn absent_detail(pod_certificates: bool) -> String {
    let pcr = if pod_certificates {
        "PodCertificateRequest is served and pod certificates are still signed, but pods cannot project the roots"
    } else {
        "nor is PodCertificateRequest"
    };
    format!(
        "ClusterTrustBundle API (certificates.k8s.io) is not served: {pcr}; enable the ClusterTrustBundle feature gate on kube-apiserver (1.33-1.36 also need --runtime-config=certificates.k8s.io/v1beta1=true; GA in 1.37) so that bundles are published"
    )
}

/// Runs the publisher until `shutdown` resolves: discovery, then one watch and writer per
/// signer. `anchors` is the trust-anchor set (DER); a change rewrites every bundle.
pub async fn run(
    client: kube::Client,
    settings: PublisherSettings,
    anchors: watch::Receiver<Vec<Vec<u8>>>,
    status: BundleStatus,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::select! {
        () = publish(client, settings, anchors, status.clone()) => {}
        () = shutdown => {}
    }
}

/// A publisher started by [`start`]: stops when dropped.
#[derive(Debug)]
pub struct Publisher {
    task: tokio::task::JoinHandle<()>,
    anchors: watch::Sender<Vec<Vec<u8>>>,
    status: BundleStatus,
}

impl Publisher {
    /// Replaces the trust-anchor set (every bundle is rewritten if it changes).
    pub fn set_anchors(&self, anchors: Vec<Vec<u8>>) {
        self.anchors.send_replace(anchors);
    }

    /// The problems now (`None`: every bundle published, or this replica is a standby).
    pub fn detail(&self) -> Option<String> {
        self.status.detail()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts publishing `anchors` for `signers` (those with `clusterTrustBundle`) while `leading`,
/// telling `report` one readiness line on every change: the problems, or what is published.
/// `None` when no signer wants a bundle.
pub fn start(
    client: kube::Client,
    signers: Vec<String>,
    anchors: Vec<Vec<u8>>,
    report: impl Fn(String) + Send + Sync + 'static,
    leading: watch::Receiver<bool>,
) -> Option<Publisher> {
    if signers.is_empty() {
        return None;
    }
    let names = signers
        .iter()
        .map(|s| super::bundle_name(s))
        .collect::<Vec<_>>()
        .join(", ");
    let status = BundleStatus::with_observer(std::sync::Arc::new(move |detail| {
        report(
            detail
                .unwrap_or_else(|| format!("ClusterTrustBundles {names} published by the leader")),
        )
    }));
    status.set(
        API_TOPIC,
        Some("ClusterTrustBundles not published yet (discovery)".into()),
    );
    let (tx, rx) = watch::channel(anchors);
    let task = spawn_while_leading(
        client,
        PublisherSettings::new(signers),
        rx,
        status.clone(),
        leading,
    );
    Some(Publisher {
        task,
        anchors: tx,
        status,
    })
}

/// The `/readyz` component of the publisher's line.
pub const READINESS_COMPONENT: &str = "clusterTrustBundles";

/// [`start`] for the signers of `controller.podCertificates` that set `clusterTrustBundle`,
/// reporting on `/readyz` (component [`READINESS_COMPONENT`]).
pub fn start_for(
    config: &crate::config::PodCertificatesConfig,
    client: kube::Client,
    anchors: Vec<Vec<u8>>,
    details: crate::admin::ReadinessDetails,
    leading: watch::Receiver<bool>,
) -> Option<Publisher> {
    let signers = config
        .trust_bundle_signers()
        .into_iter()
        .map(|s| s.signer_name.clone())
        .collect();
    start(
        client,
        signers,
        anchors,
        move |line| details.set(READINESS_COMPONENT, line),
        leading,
    )
}

/// Runs the publisher while this replica leads (`leading` true), so that replicas never write
/// the same bundles at once; stopped (and its status cleared) when leadership is lost, started
/// again when it returns. Ends when the leadership channel closes.
pub fn spawn_while_leading(
    client: kube::Client,
    settings: PublisherSettings,
    anchors: watch::Receiver<Vec<Vec<u8>>>,
    status: BundleStatus,
    mut leading: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if leading.wait_for(|l| *l).await.is_err() {
                return;
            }
            let mut lost = leading.clone();
            let until = async move {
                let _ = lost.wait_for(|l| !*l).await;
            };
            run(
                client.clone(),
                settings.clone(),
                anchors.clone(),
                status.clone(),
                until,
            )
            .await;
            status.clear();
            if leading.has_changed().is_err() {
                return;
            }
        }
    })
}

async fn publish(
    client: kube::Client,
    settings: PublisherSettings,
    anchors: watch::Receiver<Vec<Vec<u8>>>,
    status: BundleStatus,
) {
    if settings.signers.is_empty() {
        return;
    }
    let mut failures = 0u32;
    loop {
        let version = match discover(&client).await {
            Ok(Served::At(version)) => {
                // Each bundle is pending until its signer's loop has compared or written it:
                // with the API topic cleared first, the line said "published" before any was.
                for signer in &settings.signers {
                    status.set(
                        signer,
                        Some(format!(
                            "ClusterTrustBundle {} not compared yet (listing)",
                            bundle_name(signer)
                        )),
                    );
                }
                status.set(API_TOPIC, None);
                failures = 0;
                version
            }
            Ok(Served::Absent { pod_certificates }) => {
                let detail = absent_detail(pod_certificates);
                tracing::warn!("{detail}");
                status.set(API_TOPIC, Some(detail));
                tokio::time::sleep(REDISCOVER).await;
                continue;
            }
            Err(e) => {
                failures += 1;
                status.set(
                    API_TOPIC,
                    Some(format!(
                        "ClusterTrustBundle discovery failed: {e}; retrying"
                    )),
                );
                tokio::time::sleep(backoff(settings.first_backoff, failures)).await;
                continue;
            }
        };
        tracing::info!(version = %version, signers = ?settings.signers, "publishing ClusterTrustBundles");
        let resource = ApiResource {
            group: GROUP.into(),
            version: version.clone(),
            api_version: format!("{GROUP}/{version}"),
            kind: "ClusterTrustBundle".into(),
            plural: "clustertrustbundles".into(),
        };
        let mut signers: futures::stream::FuturesUnordered<_> = settings
            .signers
            .iter()
            .map(|signer| {
                maintain(
                    Api::all_with(client.clone(), &resource),
                    resource.api_version.clone(),
                    signer.clone(),
                    anchors.clone(),
                    status.clone(),
                    settings.first_backoff,
                    settings.write_timeout,
                )
            })
            .collect();
        // A signer's loop ends only when its version stopped being served: discover again.
        let _ = signers.next().await;
        drop(signers);
        // Pending again until discovery answers (never "published" in between).
        status.set(
            API_TOPIC,
            Some(format!(
                "ClusterTrustBundles not published: certificates.k8s.io/{version} is no longer served; discovering again"
            )),
        );
        for signer in &settings.signers {
            status.set(signer, None);
        }
        tracing::info!(version = %version, "ClusterTrustBundle version no longer served; asking discovery again");
    }
}

/// Keeps `signer`'s bundle equal to the anchor set; returns when the API answers 404 (the
/// version went away).
async fn maintain(
    api: Api<DynamicObject>,
    api_version: String,
    signer: String,
    mut anchors: watch::Receiver<Vec<Vec<u8>>>,
    status: BundleStatus,
    first_backoff: Duration,
    write_timeout: Duration,
) {
    let name = bundle_name(&signer);
    status.set(
        &signer,
        Some(format!(
            "ClusterTrustBundle {name} not compared yet (listing)"
        )),
    );
    let config = watcher::Config::default().fields(&format!("spec.signerName={signer}"));
    let mut events = watcher(api.clone(), config).boxed();
    // Objects of this signer by name, from the watch; only ours is acted on.
    let mut seen: BTreeMap<String, Observed> = BTreeMap::new();
    let mut listing: BTreeMap<String, Observed> = BTreeMap::new();
    let mut synced = false;
    let mut failures = 0u32;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let mut check = false;
        let pending_retry = retry_at;
        let retry = async move {
            match pending_retry {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.next() => match event {
                None => return,
                Some(Ok(watcher::Event::Init)) => listing.clear(),
                Some(Ok(watcher::Event::InitApply(o))) => {
                    listing.insert(o.metadata.name.clone().unwrap_or_default(), observed(&o));
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    seen = std::mem::take(&mut listing);
                    synced = true;
                    check = true;
                }
                Some(Ok(watcher::Event::Apply(o))) => {
                    let n = o.metadata.name.clone().unwrap_or_default();
                    check = n == name;
                    seen.insert(n, observed(&o));
                }
                Some(Ok(watcher::Event::Delete(o))) => {
                    let n = o.metadata.name.clone().unwrap_or_default();
                    if n == name {
                        tracing::info!(bundle = %name, "ClusterTrustBundle deleted; re-creating it");
                        check = true;
                    }
                    seen.remove(&n);
                }
                Some(Err(e)) => {
                    if gone(&e) {
                        return;
                    }
                    failures += 1;
                    let why = match &e {
                        watcher::Error::InitialListFailed(k)
                        | watcher::Error::WatchStartFailed(k)
                        | watcher::Error::WatchFailed(k) => describe(k),
                        other => other.to_string(),
                    };
                    status.set(&signer, Some(format!("cannot watch ClusterTrustBundles of signer {signer}: {why}{}", hint(&e, &signer))));
                    tracing::warn!(signer = %signer, error = %e, "ClusterTrustBundle watch failed");
                    tokio::time::sleep(backoff(first_backoff, failures)).await;
                }
            },
            changed = anchors.changed() => {
                if changed.is_err() {
                    return;
                }
                check = synced;
            }
            () = retry => {
                retry_at = None;
                check = synced;
            }
        }
        if !check || !synced {
            continue;
        }
        let set = anchors.borrow().clone();
        let pem = match super::trust_bundle_pem(&set) {
            Ok(pem) => pem,
            Err(e) => {
                status.set(
                    &signer,
                    Some(format!("ClusterTrustBundle {name} not published: {e}")),
                );
                continue;
            }
        };
        if !needs_write(&signer, &pem, seen.get(&name)) {
            status.set(&signer, None);
            failures = 0;
            continue;
        }
        let written = tokio::time::timeout(
            write_timeout,
            write(&api, &api_version, &name, &signer, &pem),
        )
        .await
        .unwrap_or_else(|_| {
            Err(kube::Error::Service(
                format!("the API server did not answer within {write_timeout:?}").into(),
            ))
        });
        match written {
            Ok(o) => {
                tracing::info!(bundle = %name, "ClusterTrustBundle published");
                seen.insert(name.clone(), observed(&o));
                status.set(&signer, None);
                failures = 0;
            }
            Err(e) if is_404(&e) => return,
            Err(e) => {
                failures += 1;
                let delay = backoff(first_backoff, failures);
                let message = format!(
                    "cannot publish ClusterTrustBundle {name}: {}{}",
                    describe(&e),
                    hint(&e, &signer)
                );
                tracing::warn!(retry_in_ms = delay.as_millis() as u64, "{message}");
                status.set(&signer, Some(message));
                retry_at = Some(tokio::time::Instant::now() + delay);
            }
        }
    }
}

/// One forced server-side apply of the whole bundle.
async fn write(
    api: &Api<DynamicObject>,
    api_version: &str,
    name: &str,
    signer: &str,
    pem: &str,
) -> Result<DynamicObject, kube::Error> {
    let body = json!({
        "apiVersion": api_version,
        "kind": "ClusterTrustBundle",
        "metadata": {"name": name, "labels": {LABEL_KEY: LABEL_VALUE}},
        "spec": {"signerName": signer, "trustBundle": pem},
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
}

fn observed(o: &DynamicObject) -> Observed {
    let text = |p: &str| {
        o.data
            .pointer(p)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Observed {
        signer_name: text("/spec/signerName"),
        trust_bundle: text("/spec/trustBundle"),
        label: o
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_KEY).cloned()),
    }
}

/// The API server's own words for a refusal (kube's Display of an API error repeats the whole
/// Status), else the client's message.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

fn is_404(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_403(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// A watch error that means the version is no longer served.
fn gone(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => is_404(e),
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

/// What to grant when the API server refused: the `attest` verb is checked by its own admission
/// plugin, on top of RBAC on the resource.
fn hint(e: &(dyn std::error::Error + 'static), signer: &str) -> String {
    let refused = match e.downcast_ref::<kube::Error>() {
        Some(k) => is_403(k),
        None => match e.downcast_ref::<watcher::Error>() {
            Some(
                watcher::Error::InitialListFailed(k)
                | watcher::Error::WatchStartFailed(k)
                | watcher::Error::WatchFailed(k),
            ) => is_403(k),
            Some(watcher::Error::WatchError(s)) => s.code == 403,
            _ => false,
        },
    };
    if refused {
        format!(
            " (grant the controller's ServiceAccount verb attest on certificates.k8s.io signers resourceNames [{signer}] and get/list/watch/create/patch on clustertrustbundles: chart value config.podCertificates)"
        )
    } else {
        String::new()
    }
}

/// `first · 2^(failures−1)`, capped at [`MAX_BACKOFF`].
fn backoff(first: Duration, failures: u32) -> Duration {
    first
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_secs(1);
        assert_eq!(backoff(s, 1), s);
        assert_eq!(backoff(s, 3), Duration::from_secs(4));
        assert_eq!(backoff(s, 40), MAX_BACKOFF);
    }

    #[test]
    fn an_absent_api_names_the_gate_and_the_runtime_config() {
        let detail = absent_detail(true);
        assert!(detail.contains("ClusterTrustBundle feature gate"));
        assert!(detail.contains("--runtime-config=certificates.k8s.io/v1beta1=true"));
        assert!(detail.contains("pod certificates are still signed"));
    }
}
