//! The ClusterTrustBundle publisher end to end: the real bootstrap against the mock TLSPC reads a
//! trust-anchor file of several CAs, the publisher (kube-rs) writes one bundle per signer to
//! kube-sim, whose admission applies kube-apiserver's rules (name prefix, CA-only PEM without
//! headers or duplicates, the `attest` check), and openssl verifies the sub-CA's chain against
//! the published PEM.

use std::sync::Arc;
use std::time::Duration;

use firefly::bootstrap::{Bootstrap, BootstrapConfig as _, SystemClock};
use firefly::trust_bundle::publish::{self, PublisherSettings};
use firefly::trust_bundle::{BundleStatus, LABEL_KEY, bundle_name};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube_sim::{FaultRule, KubeSim, Release, SimOptions};
use serde_json::{Value, json};
use support::bootstrap::{Env, EnvBuilder};
use support::{PATIENCE, eventually, verifiers};
use tokio::sync::{oneshot, watch};

const GROUP: &str = "certificates.k8s.io";
const SIGNERS: [&str; 2] = ["firefly.venafi.com/istio-mtls", "example.org/gateway.edge"];

/// A CA certificate of our own (not the mock's), PEM and DER.
fn other_ca(cn: &str) -> (String, Vec<u8>) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
    (cert.pem(), cert.der().to_vec())
}

fn der_of(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).expect("PEM").contents().to_vec()
}

/// The mock TLSPC and a bootstrap whose `trustAnchorFile` holds another CA, the mock's root and
/// the other CA again (with text around the blocks), in that order: the expected set is
/// [other CA, mock root].
async fn bootstrap_with_anchor_file() -> (Env, Bootstrap, Vec<Vec<u8>>) {
    let env = EnvBuilder::default().start().await;
    let (other_pem, other_der) = other_ca("Next Root (rotation)");
    let root_pem = env.mock.root_pem().to_string();
    let path = env.dir.path().join("anchors.pem");
    std::fs::write(
        &path,
        format!("# the next root\n{other_pem}\n# today's root\n{root_pem}{other_pem}"),
    )
    .unwrap();
    let mut settings = env.config.bootstrap_settings(&|_| None).unwrap();
    settings.trust_anchor_file = Some(path);
    let bootstrap = Bootstrap::start(&settings, Arc::new(SystemClock))
        .await
        .expect("the sub-CA chains to one of the anchors");
    let expected = vec![other_der, der_of(&root_pem)];
    (env, bootstrap, expected)
}

/// A publisher running in the test's runtime; stopped on drop.
struct Running {
    status: BundleStatus,
    anchors: watch::Sender<Vec<Vec<u8>>>,
    _stop: oneshot::Sender<()>,
}

impl Running {
    /// Stops the publisher and waits until it has: its every copy of the anchors' receiver is
    /// gone once its loops have been dropped.
    async fn stop(self) {
        let Running {
            anchors,
            _stop: stop,
            ..
        } = self;
        drop(stop);
        tokio::time::timeout(PATIENCE, anchors.closed())
            .await
            .expect("the publisher stops");
    }
}

fn start_publisher(client: kube::Client, anchors: Vec<Vec<u8>>, signers: &[&str]) -> Running {
    start_publisher_bounded(client, anchors, signers, publish::WRITE_TIMEOUT)
}

/// [`start_publisher`] with each bundle write abandoned after `write_timeout`.
fn start_publisher_bounded(
    client: kube::Client,
    anchors: Vec<Vec<u8>>,
    signers: &[&str],
    write_timeout: Duration,
) -> Running {
    let status = BundleStatus::default();
    let (tx, rx) = watch::channel(anchors);
    let (stop, stopped) = oneshot::channel::<()>();
    let mut settings = PublisherSettings::new(signers.iter().map(|s| s.to_string()).collect());
    settings.first_backoff = Duration::from_millis(100);
    settings.write_timeout = write_timeout;
    tokio::spawn(publish::run(
        client,
        settings,
        rx,
        status.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        status,
        anchors: tx,
        _stop: stop,
    }
}

fn bundle(sim: &KubeSim, signer: &str) -> Option<Value> {
    sim.object(GROUP, "clustertrustbundles", "", &bundle_name(signer))
}

async fn wait_for_bundles(sim: &KubeSim, signers: &[&str]) {
    assert!(
        eventually(PATIENCE, || signers
            .iter()
            .all(|s| bundle(sim, s).is_some()))
        .await,
        "bundles for {signers:?} not published"
    );
}

fn pem_ders(obj: &Value) -> Vec<Vec<u8>> {
    let text = obj["spec"]["trustBundle"].as_str().expect("trustBundle");
    pem::parse_many(text)
        .expect("PEM")
        .iter()
        .map(|b| {
            assert_eq!(b.tag(), "CERTIFICATE");
            assert!(b.headers().iter().next().is_none(), "no PEM headers");
            b.contents().to_vec()
        })
        .collect()
}

fn sim_options(release: Release, v1beta1: bool) -> SimOptions {
    let mut o = SimOptions::default();
    o.kubernetes_release = release;
    o.certificates_v1beta1 = v1beta1;
    o.record_writes = true;
    o
}

/// Each signer gets `<signer with : for />:root`, the label, `spec.signerName` and exactly the
/// file's anchors (file order, duplicate dropped), through v1 on 1.37 and v1beta1 on 1.36; the
/// sub-CA's chain verifies against the published PEM with openssl.
#[tokio::test]
async fn each_signer_gets_a_bundle_of_exactly_the_anchor_file_set_on_1_37_and_1_36() {
    let (_env, bootstrap, expected) = bootstrap_with_anchor_file().await;
    assert_eq!(bootstrap.trust_anchors_der(), expected);
    for (release, version) in [(Release::V1_37, "v1"), (Release::V1_36, "v1beta1")] {
        let sim = KubeSim::start(sim_options(release, true)).await.unwrap();
        let _publisher = start_publisher(
            sim.client().await.unwrap(),
            bootstrap.trust_anchors_der(),
            &SIGNERS,
        );
        wait_for_bundles(&sim, &SIGNERS).await;
        for signer in SIGNERS {
            let obj = bundle(&sim, signer).unwrap();
            let name = obj["metadata"]["name"].as_str().unwrap();
            assert_eq!(name, format!("{}:root", signer.replace('/', ":")));
            assert_eq!(obj["metadata"]["labels"][LABEL_KEY], "root", "{obj}");
            assert_eq!(obj["spec"]["signerName"], signer);
            assert_eq!(
                pem_ders(&obj),
                expected,
                "{release:?}: exactly the file's set"
            );
        }
        let versions: Vec<String> = sim
            .writes()
            .iter()
            .filter(|w| w.resource == "clustertrustbundles")
            .map(|w| {
                let body: Value = serde_json::from_slice(&w.body).unwrap();
                body["apiVersion"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        assert_eq!(
            versions,
            vec![format!("{GROUP}/{version}"); 2],
            "{release:?}: one write per signer, through the discovered version"
        );
    }

    // Pods trust the root: the sub-CA and its intermediates verify against the bundle's PEM.
    let ca = bootstrap.signer().current().expect("active sub-CA");
    let sub_ca_pem = pem::encode(&pem::Pem::new("CERTIFICATE", ca.certificate_der()));
    let intermediates: Vec<String> = ca.chain_pems().into_iter().skip(1).collect();
    let published: String = expected
        .iter()
        .map(|d| pem::encode(&pem::Pem::new("CERTIFICATE", d.clone())))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (ok, output) =
        verifiers::openssl_verify_parts(dir.path(), &published, &intermediates, &sub_ca_pem);
    assert!(ok, "openssl: {output}");
}

/// An unchanged set costs no write: not when the anchors are sent again, not when a second
/// publisher (a restart) starts; a changed set is one write per signer.
#[tokio::test]
async fn an_unchanged_bundle_is_not_rewritten_and_a_changed_set_is_written_once() {
    let sim = KubeSim::start(sim_options(Release::V1_37, false))
        .await
        .unwrap();
    let (_, root) = other_ca("Root A");
    let signers = &SIGNERS[..1];
    let first = start_publisher(sim.client().await.unwrap(), vec![root.clone()], signers);
    wait_for_bundles(&sim, signers).await;
    assert_eq!(sim.write_count("clustertrustbundles"), 1);
    let rv = bundle(&sim, signers[0]).unwrap()["metadata"]["resourceVersion"].clone();

    // Each publisher compares in one loop, in order, and has written before it says so; its
    // status shows where it is. An empty set cannot be published (the status says so, nothing
    // is written); the set sent again after it is compared with the published bundle, which
    // clears the status.
    first.anchors.send_replace(Vec::new());
    assert!(eventually(PATIENCE, || first.status.detail().is_some()).await);
    first.anchors.send_replace(vec![root.clone(), root.clone()]);
    assert!(
        eventually(PATIENCE, || first.status.detail().is_none()).await,
        "{:?}",
        first.status.detail()
    );
    let restarted = start_publisher(sim.client().await.unwrap(), vec![root.clone()], signers);
    // A publisher watches only once it has listed and compared (and written, had it to).
    assert!(
        eventually(PATIENCE, || sim
            .request_count("watch", "clustertrustbundles")
            >= 2)
        .await
    );
    assert_eq!(
        sim.write_count("clustertrustbundles"),
        1,
        "no write for an unchanged set"
    );
    assert_eq!(
        bundle(&sim, signers[0]).unwrap()["metadata"]["resourceVersion"],
        rv
    );
    assert_eq!(
        sim.request_count("get", "clustertrustbundles"),
        0,
        "no polling"
    );
    restarted.stop().await;

    // Rotation: the next root joins the set; one write.
    let (_, next) = other_ca("Root B");
    first.anchors.send_replace(vec![root.clone(), next.clone()]);
    assert!(
        eventually(PATIENCE, || bundle(&sim, signers[0])
            .is_some_and(|b| pem_ders(&b) == vec![root.clone(), next.clone()]))
        .await
    );
    // A barrier through the same watch: the bundle deleted after that write is re-created once
    // every event before the deletion (the write's own among them) has been handled.
    let uid = bundle(&sim, signers[0]).unwrap()["metadata"]["uid"].clone();
    let api: Api<DynamicObject> = Api::all_with(sim.client().await.unwrap(), &ctb_resource());
    api.delete(&bundle_name(signers[0]), &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        eventually(PATIENCE, || bundle(&sim, signers[0])
            .is_some_and(|b| b["metadata"]["uid"] != uid))
        .await,
        "re-created"
    );
    assert_eq!(
        publisher_writes(&sim),
        3,
        "one write for the changed set (then the barrier's re-creation)"
    );
    assert_eq!(first.status.detail(), None);
}

/// The publishers' writes (server-side applies) of ClusterTrustBundles so far.
fn publisher_writes(sim: &KubeSim) -> usize {
    sim.writes()
        .iter()
        .filter(|w| w.resource == "clustertrustbundles" && w.verb == "patch")
        .count()
}

/// Someone deletes the bundle, or edits it: the watch brings it back, with no GET.
#[tokio::test]
async fn a_deleted_or_edited_bundle_is_restored_from_the_watch() {
    let sim = KubeSim::start(sim_options(Release::V1_37, false))
        .await
        .unwrap();
    let (_, root) = other_ca("Root A");
    let signers = &SIGNERS[..1];
    let _publisher = start_publisher(sim.client().await.unwrap(), vec![root.clone()], signers);
    wait_for_bundles(&sim, signers).await;
    let admin = sim.client().await.unwrap();
    let api: Api<DynamicObject> = Api::all_with(admin, &ctb_resource());
    let name = bundle_name(signers[0]);
    let uid = bundle(&sim, signers[0]).unwrap()["metadata"]["uid"].clone();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    assert!(
        eventually(PATIENCE, || bundle(&sim, signers[0])
            .is_some_and(|b| b["metadata"]["uid"] != uid))
        .await,
        "re-created"
    );
    assert_eq!(
        pem_ders(&bundle(&sim, signers[0]).unwrap()),
        vec![root.clone()]
    );

    // An edit that drops our label is undone.
    let mut edited: DynamicObject =
        serde_json::from_value(bundle(&sim, signers[0]).unwrap()).unwrap();
    edited.metadata.labels = None;
    edited.metadata.managed_fields = None;
    api.replace(&name, &PostParams::default(), &edited)
        .await
        .unwrap();
    assert!(
        eventually(PATIENCE, || bundle(&sim, signers[0])
            .is_some_and(|b| b["metadata"]["labels"][LABEL_KEY] == "root"))
        .await,
        "label restored"
    );
    assert_eq!(
        sim.request_count("get", "clustertrustbundles"),
        0,
        "no polling"
    );
}

/// PodCertificateRequest served, ClusterTrustBundle not (its feature gate off): the status says
/// so and names the gate and runtime-config; nothing is written.
#[tokio::test]
async fn without_the_api_the_status_names_the_gate() {
    let mut options = sim_options(Release::V1_36, true);
    options.cluster_trust_bundles = false;
    let sim = KubeSim::start(options).await.unwrap();
    let (_, root) = other_ca("Root A");
    let publisher = start_publisher(sim.client().await.unwrap(), vec![root], &SIGNERS);
    assert!(eventually(PATIENCE, || publisher.status.detail().is_some()).await);
    let detail = publisher.status.detail().unwrap();
    assert!(
        detail.contains("ClusterTrustBundle API (certificates.k8s.io) is not served")
            && detail
                .contains("PodCertificateRequest is served and pod certificates are still signed")
            && detail.contains("ClusterTrustBundle feature gate")
            && detail.contains("--runtime-config=certificates.k8s.io/v1beta1=true"),
        "{detail}"
    );
    assert_eq!(sim.write_count("clustertrustbundles"), 0);
}

/// Under RBAC, a service account with every clustertrustbundles verb but no `attest` on the
/// signer: the API server refuses, the status says what to grant; once granted, the retry
/// publishes and the status clears.
#[tokio::test]
async fn without_attest_the_status_says_what_to_grant_and_a_grant_recovers() {
    let mut options = sim_options(Release::V1_37, false);
    options.authenticate = true;
    let sim = KubeSim::start(options).await.unwrap();
    sim.ensure_namespace("venafi").unwrap();
    let admin = sim.client().await.unwrap();
    let binding = |name: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "firefly", "namespace": "venafi"}]})
    };
    create(
        &admin,
        "ClusterRole",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "bundles"},
            "rules": [{"apiGroups": [GROUP], "resources": ["clustertrustbundles"],
                "verbs": ["get", "list", "watch", "create", "patch"]}]}),
    )
    .await;
    create(&admin, "ClusterRoleBinding", binding("bundles")).await;
    let token = sim.service_account_token("venafi", "firefly").unwrap();
    let client = sim.client_with_token(&token).await.unwrap();
    let (_, root) = other_ca("Root A");
    let signers = &SIGNERS[..1];
    let publisher = start_publisher(client, vec![root], signers);
    assert!(
        eventually(PATIENCE, || publisher
            .status
            .detail()
            .is_some_and(|d| d.contains("cannot publish")))
        .await,
        "{:?}",
        publisher.status.detail()
    );
    let detail = publisher.status.detail().unwrap();
    assert!(
        detail.contains("cannot publish ClusterTrustBundle firefly.venafi.com:istio-mtls:root")
            && detail.contains("attest")
            && detail.contains("resourceNames [firefly.venafi.com/istio-mtls]"),
        "{detail}"
    );
    assert!(bundle(&sim, signers[0]).is_none());

    create(
        &admin,
        "ClusterRole",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "attest"},
            "rules": [{"apiGroups": [GROUP], "resources": ["signers"],
                "resourceNames": [signers[0]], "verbs": ["attest"]}]}),
    )
    .await;
    create(&admin, "ClusterRoleBinding", binding("attest")).await;
    wait_for_bundles(&sim, signers).await;
    assert!(eventually(PATIENCE, || publisher.status.detail().is_none()).await);
}

/// A bundle write the API server never answers is abandoned after the publisher's bound: the
/// readiness detail says so, and the retry publishes the bundle. Before, the signer's loop waited
/// for the client's 300 s read timeout, publishing nothing and following no change meanwhile.
#[tokio::test]
async fn a_bundle_write_that_is_never_answered_is_abandoned_and_retried() {
    /// Far beyond the test's patience.
    const HUNG: Duration = Duration::from_secs(3600);
    let sim = KubeSim::start(sim_options(Release::V1_37, false))
        .await
        .unwrap();
    sim.faults().inject(
        FaultRule::latency(HUNG)
            .verb("patch")
            .resource("clustertrustbundles")
            .times(1),
    );
    let (_, root) = other_ca("Root A");
    let signers = &SIGNERS[..1];
    let publisher = start_publisher_bounded(
        sim.client().await.unwrap(),
        vec![root.clone()],
        signers,
        Duration::from_secs(1),
    );
    assert!(
        eventually(PATIENCE, || publisher
            .status
            .detail()
            .is_some_and(|d| d.contains("did not answer within 1s")))
        .await,
        "{:?}",
        publisher.status.detail()
    );
    wait_for_bundles(&sim, signers).await;
    assert_eq!(pem_ders(&bundle(&sim, signers[0]).unwrap()), vec![root]);
    assert!(eventually(PATIENCE, || publisher.status.detail().is_none()).await);
}

/// Creates an RBAC object (`kind` ClusterRole or ClusterRoleBinding) as the admin.
async fn create(admin: &kube::Client, kind: &str, body: Value) {
    let api: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &kube::api::ApiResource {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
        },
    );
    api.create(
        &PostParams::default(),
        &serde_json::from_value(body).unwrap(),
    )
    .await
    .unwrap();
}

/// Only the leader publishes: a standby writes nothing and does not restore a deleted bundle;
/// regaining leadership restores it.
#[tokio::test]
async fn only_the_leader_publishes() {
    let sim = KubeSim::start(sim_options(Release::V1_37, false))
        .await
        .unwrap();
    let (_, root) = other_ca("Root A");
    let signers = &SIGNERS[..1];
    let (leader_tx, leader_rx) = watch::channel(false);
    let (anchors_tx, anchors_rx) = watch::channel(vec![root.clone()]);
    let mut settings = PublisherSettings::new(vec![signers[0].to_string()]);
    settings.first_backoff = Duration::from_millis(100);
    let status = BundleStatus::default();
    let task = publish::spawn_while_leading(
        sim.client().await.unwrap(),
        settings,
        anchors_rx,
        status.clone(),
        leader_rx,
    );
    // Nothing to wait for in a standby: this window only gives a standby that lists the time
    // to show it, and the final count catches a list at any moment before the lead.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sim.request_count("list", "clustertrustbundles"),
        0,
        "a standby does not even watch"
    );
    leader_tx.send_replace(true);
    wait_for_bundles(&sim, signers).await;
    assert!(
        eventually(PATIENCE, || sim
            .request_count("watch", "clustertrustbundles")
            >= 1)
        .await
    );
    // Losing the lead stops the publisher and then clears its status: an empty set (which
    // cannot be published, and writes nothing) gives it a status to clear.
    anchors_tx.send_replace(Vec::new());
    assert!(eventually(PATIENCE, || status.detail().is_some()).await);
    leader_tx.send_replace(false);
    assert!(
        eventually(PATIENCE, || status.detail().is_none()).await,
        "the publisher stops with the lead: {:?}",
        status.detail()
    );
    anchors_tx.send_replace(vec![root.clone()]);
    let admin = sim.client().await.unwrap();
    let api: Api<DynamicObject> = Api::all_with(admin, &ctb_resource());
    api.delete(&bundle_name(signers[0]), &DeleteParams::default())
        .await
        .unwrap();
    // Again a window for a standby that restores it to show it; the count of writes just before
    // the lead returns catches a restore at any moment of the standby.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        bundle(&sim, signers[0]).is_none(),
        "a standby does not restore it"
    );
    assert_eq!(publisher_writes(&sim), 1, "a standby writes nothing");
    leader_tx.send_replace(true);
    wait_for_bundles(&sim, signers).await;
    assert_eq!(
        sim.request_count("list", "clustertrustbundles"),
        2,
        "one list per lead: a standby does not even watch"
    );
    drop(leader_tx);
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("ends with the leadership channel")
        .unwrap();
}

fn ctb_resource() -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: GROUP.into(),
        version: "v1".into(),
        api_version: format!("{GROUP}/v1"),
        kind: "ClusterTrustBundle".into(),
        plural: "clustertrustbundles".into(),
    }
}

/// `publish::start`: one readiness line, saying what is missing until the bundle is compared and
/// written, then what is published; nothing is started without a bundle signer.
#[tokio::test]
async fn the_readiness_line_says_what_is_published() {
    let sim = Arc::new(
        KubeSim::start(sim_options(Release::V1_37, false))
            .await
            .unwrap(),
    );
    let (_, root) = other_ca("Root A");
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // Every "published" line is checked against kube-sim the moment it is reported.
    let premature = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (sink, early, stored) = (lines.clone(), premature.clone(), sim.clone());
    let (_leader, leading) = watch::channel(true);
    assert!(
        publish::start(
            sim.client().await.unwrap(),
            vec![],
            vec![root.clone()],
            |_| {},
            leading.clone()
        )
        .is_none()
    );
    let publisher = publish::start(
        sim.client().await.unwrap(),
        vec![SIGNERS[0].to_string()],
        vec![root],
        move |line| {
            if line.ends_with("published by the leader") && bundle(&stored, SIGNERS[0]).is_none() {
                early.lock().unwrap().push(line.clone());
            }
            sink.lock().unwrap().push(line)
        },
        leading,
    )
    .expect("a bundle signer");
    wait_for_bundles(&sim, &SIGNERS[..1]).await;
    let last = || lines.lock().unwrap().last().cloned().unwrap_or_default();
    assert!(
        eventually(PATIENCE, || last()
            == "ClusterTrustBundles firefly.venafi.com:istio-mtls:root published by the leader")
        .await,
        "{:?}",
        lines.lock().unwrap()
    );
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("not compared yet")),
        "{:?}",
        lines.lock().unwrap()
    );
    assert_eq!(publisher.detail(), None);
    assert!(
        premature.lock().unwrap().is_empty(),
        "said published before the bundle existed: {:?}",
        lines.lock().unwrap()
    );
}

/// `firefly run` with pod certificates enabled (no trustAnchorFile: the pinned mock root) against
/// kube-sim 1.37: the bundle holds the mock's root and `/readyz` says it is published; with the
/// ClusterTrustBundle API off, `/readyz` stays 200 and names the gate, and pod certificates are
/// still issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefly_run_publishes_the_pinned_root_and_readyz_reports_the_bundles() {
    use std::io::BufRead as _;
    let mock = support::tlspc_mock::serve(support::SHIPPED_SEED, None)
        .await
        .unwrap();
    for served in [true, false] {
        let mut options = sim_options(Release::V1_37, false);
        options.cluster_trust_bundles = served;
        let sim = support::cluster::start_sim_with(options, &["venafi"])
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("svc-acct.key");
        std::fs::write(&key_file, mock.service_account_key_pem().unwrap()).unwrap();
        let opts = support::controller::Options {
            pod_certificates: Some(
                "    enabled: true\n    signers:\n      - signerName: firefly.venafi.com/istio-mtls\n        policyName: istio-mtls\n        trustDomain: cluster.local\n        namespaces: [\"*\"]\n        clusterTrustBundle: true\n".into(),
            ),
            ..Default::default()
        };
        let config =
            support::controller::config_yaml(mock.base_url(), mock.client_id(), &key_file, &opts)
                .replacen(
                    "controller:\n",
                    &format!(
                        "controller:\n  kubeconfigFile: {}\n",
                        sim.kubeconfig_path().display()
                    ),
                    1,
                );
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_firefly"))
            .args(["run", "-c"])
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("firefly run starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let readiness = loop {
            let line = rx
                .recv_timeout(PATIENCE)
                .expect("firefly run logs its admin endpoints");
            let Ok(json) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if json["fields"]["message"] == "admin endpoints listening" {
                break json["fields"]["readiness"].as_str().unwrap().to_owned();
            }
        };
        let want = if served {
            "clusterTrustBundles: ClusterTrustBundles firefly.venafi.com:istio-mtls:root published by the leader"
        } else {
            "clusterTrustBundles: ClusterTrustBundle API (certificates.k8s.io) is not served: PodCertificateRequest is served"
        };
        let http = reqwest::Client::new();
        let (mut code, mut text) = (0, String::new());
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !text.contains(want) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(r) = http.get(format!("http://{readiness}/readyz")).send().await {
                code = r.status().as_u16();
                text = r.text().await.unwrap_or_default();
            }
        }
        let found = text.contains(want);
        // Without the bundle API the door keeps signing: a kubelet's request is issued.
        let issued = if served {
            None
        } else {
            sim.put_object(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "venafi"}}))
                .unwrap();
            sim.put_object(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "venafi"}, "spec": {
                "nodeName": "node-1", "serviceAccountName": "web",
                "containers": [{"name": "c", "image": "x"}],
                "volumes": [{"name": "certs", "projected": {"sources": [{"podCertificate": {"signerName": SIGNERS[0], "keyType": "ECDSAP256", "credentialBundlePath": "b.pem"}}]}}]}}))
            .unwrap();
            let kubelet = sim.kubelet("node-1").await.unwrap();
            let pc = kube_sim::kubelet::PodCertificate::new(
                SIGNERS[0],
                kube_sim::kubelet::KeyType::EcdsaP256,
            );
            Some(kubelet.request("venafi", "web-0", &pc, PATIENCE).await)
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "/readyz ({code}) lacks {want:?}:\n{text}");
        if let Some(outcome) = issued {
            let outcome = outcome.expect("the kubelet's request is answered");
            assert!(
                matches!(outcome, kube_sim::kubelet::Outcome::Issued { .. }),
                "without the ClusterTrustBundle API the door still signs: {outcome:?}"
            );
        }
        assert_eq!(code, 200, "{text}");
        if served {
            let obj = bundle(&sim, SIGNERS[0]).expect("published");
            assert_eq!(pem_ders(&obj), vec![der_of(mock.root_pem())]);
        } else {
            assert_eq!(sim.write_count("clustertrustbundles"), 0);
        }
    }
}

/// The chart's own RBAC (Helm SDK render with `config.podCertificates.enabled`, installed into
/// kube-sim with RBAC on) is enough for the publisher running as the chart's ServiceAccount:
/// `attest` on the signer name and the clustertrustbundles verbs.
#[tokio::test]
async fn the_charts_rbac_lets_the_publisher_publish() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rbac.json");
    let output = std::process::Command::new(verifiers::python())
        .arg(support::repo_root().join("tests/helm/chart_checks.py"))
        .args(["controller_rbac_objects", "default"])
        .arg(&out)
        .arg(r#"{"config": {"podCertificates": {"enabled": true}}}"#)
        .current_dir(support::repo_root())
        .output()
        .expect("start the chart checks");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let objects: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let mut options = sim_options(Release::V1_37, false);
    options.authenticate = true;
    let sim = KubeSim::start(options).await.unwrap();
    sim.ensure_namespace("venafi").unwrap();
    let admin = sim.client().await.unwrap();
    for object in objects {
        let kind = object["kind"].as_str().unwrap().to_owned();
        let resource = kube::api::ApiResource {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            api_version: "rbac.authorization.k8s.io/v1".into(),
            plural: format!("{}s", kind.to_lowercase()),
            kind,
        };
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, &resource),
            None => Api::all_with(admin.clone(), &resource),
        };
        api.create(
            &PostParams::default(),
            &serde_json::from_value(object).unwrap(),
        )
        .await
        .unwrap();
    }
    let token = sim.service_account_token("venafi", "firefly").unwrap();
    let client = sim.client_with_token(&token).await.unwrap();
    let (_, root) = other_ca("Root A");
    let publisher = start_publisher(client, vec![root.clone()], &SIGNERS[..1]);
    wait_for_bundles(&sim, &SIGNERS[..1]).await;
    assert_eq!(pem_ders(&bundle(&sim, SIGNERS[0]).unwrap()), vec![root]);
    assert!(eventually(PATIENCE, || publisher.status.detail().is_none()).await);
    // A signer the chart was not told about gets no `attest`: the API server refuses it.
    let other = start_publisher(
        sim.client_with_token(&token).await.unwrap(),
        vec![other_ca("Root B").1],
        &SIGNERS[1..],
    );
    assert!(
        eventually(PATIENCE, || other
            .status
            .detail()
            .is_some_and(|d| d.contains("403 Forbidden")))
        .await,
        "{:?}",
        other.status.detail()
    );
}
