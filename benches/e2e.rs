//! `cargo bench --bench e2e`: the controller end to end against kube-sim and the mock TLSPC —
//! backlog drain time, approval→Ready latency at a steady rate, CertificateRequest API calls per
//! issued request, and resident memory per retained request with the controller in its own
//! process; the backlog and steady phases also through the Kubernetes CertificateSigningRequest
//! door, with istiod as the requester (`csr-backlog`, `csr-steady`), and through the
//! PodCertificateRequest door with kube-sim's kubelets as the requesters (`pcr-backlog`,
//! `pcr-steady`); a storm of refusals (`refusals`); and leader handover between two `firefly run`
//! replicas on SIGTERM and on SIGKILL (`takeover`). Prints figures and ratios against the goals and writes docs/perf-backlog.svg
//! and docs/perf-latency.svg (and docs/perf-csr-*.svg, docs/perf-pcr-*.svg). A missed goal is
//! reported as missed, with the measured figure. Each phase runs in a fresh process of its own (see `run_phases_in_children`). The controller's CPU per
//! issued request is set against the crypto floor measured in the same run: CSR signature verify
//! (the run's RSA-2048/P-256 mix) + P-256 leaf sign + leaf verify, with aws-lc-rs directly.

use support::{e2e, istiod, pods};

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use firefly::crd::CertificateRequest;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

/// Requests in the backlog run (DESIGN.md §6).
const BACKLOG: usize = 10_000;
/// Goal: the whole backlog Ready within this, controller and kube-sim on this machine.
const BACKLOG_GOAL: Duration = Duration::from_secs(2);
/// Requests in the large backlog run, with `firefly run` in its own process.
const LARGE_BACKLOG: usize = 100_000;
/// Goal: the large backlog Ready within this.
const LARGE_BACKLOG_GOAL: Duration = Duration::from_secs(20);
/// Goal: resident memory growth of the controller per retained request in the large backlog.
const LARGE_RSS_GOAL_BYTES: f64 = 1024.0;
/// Goal: controller CPU per issued request ÷ the crypto floor of the same run.
const CPU_FLOOR_GOAL: f64 = 1.5;
/// Requests per second of the steady run.
const RATE: u64 = 1_000;
/// A second, lower rate, below what this machine sustains, so the service latency shows apart
/// from queueing.
const LOW_RATE: u64 = 400;
/// Duration of the steady run.
const STEADY_SECS: u64 = 5;
/// Goal: approval→Ready p99 at `RATE`.
const P99_GOAL: Duration = Duration::from_millis(5);
/// Requests retained for the resident-memory figure.
const RETAINED: usize = 10_000;
/// Goal: resident memory per retained request (DESIGN §6), once the burst's freed heap is back.
const RSS_GOAL_BYTES: f64 = 1024.0;
/// Rounds of `RETAINED` requests in the rss phase: the goal is judged on the first; the others
/// show whether memory grows with every request retained or stays at what one burst left.
const RSS_ROUNDS: usize = 3;
/// Upper bound of every wait, so a stuck run ends with an error instead of hanging.
const PATIENCE: Duration = Duration::from_secs(300);
/// Requests in the refusal storm: a requester outside `controller.allowedRequesters` asks this
/// many times; each refusal is one status write and one Warning event.
const REFUSALS: usize = 20_000;
/// How long the requests sent after the large backlog may take.
const AFTER_BACKLOG_PATIENCE: Duration = Duration::from_secs(60);

/// The phases, in the order they run (`csr-`: the CertificateSigningRequest door; `pcr-`: the
/// PodCertificateRequest door; the others drive the CertificateRequest door).
const PHASES: [&str; 11] = [
    "backlog",
    "steady",
    "low",
    "csr-backlog",
    "csr-steady",
    "pcr-backlog",
    "pcr-steady",
    "rss",
    "large",
    "refusals",
    "takeover",
];
/// Leaders stopped with SIGTERM in the takeover phase, each half a second later in the
/// standby's retry cycle than the one before.
const TAKEOVER_ROUNDS: u16 = 4;
/// Requests per second during the takeover phase (a live mesh's trickle, not a load test).
const TAKEOVER_RATE: u64 = 50;
/// The product's default lease timings (`controller.leaderElection.*`, client-go's defaults).
const DEFAULT_LEASE: (&str, &str, &str) = ("15s", "10s", "2s");
/// Set on the child process that runs one phase.
const PHASE_ENV: &str = "FIREFLY_E2E_PHASE";

// The allocator `firefly` runs with, so the in-process phases (controller and kube-sim in this
// process) measure the controller as it ships.
#[global_allocator]
static ALLOCATOR: firefly_tlspc::bootstrap::locked_key::Allocator =
    firefly_tlspc::bootstrap::locked_key::Allocator;

fn main() -> ExitCode {
    let _ = firefly_tlspc::bootstrap::locked_key::prepare_allocator();
    // `cargo bench` passes `--bench`; a filter argument selects the phases whose names start with
    // it (backlog, steady, low, csr-backlog, csr-steady, pcr-backlog, pcr-steady, rss, large, refusals,
    // takeover;
    // `csr` and `pcr` select both phases of their door).
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let phase = std::env::var(PHASE_ENV).ok();
    if phase.is_none() {
        return run_phases_in_children(&filter);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(phase.as_deref().unwrap_or_default())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs each selected phase in a fresh process of this bench: a phase then starts with nothing
/// left behind by the one before. (In one process, tearing down the backlog's kube-sim frees
/// 10,000 stored objects for about 0.3 s on both cores while holding glibc's arena locks, which
/// stalled the next phase's first requests by up to 300 ms.)
fn run_phases_in_children(filter: &[String]) -> ExitCode {
    let wants =
        |name: &str| filter.is_empty() || filter.iter().any(|f| name.starts_with(f.as_str()));
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("cannot find this bench's executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("e2e bench — {} cores, one process per phase", num_cpus());
    for phase in PHASES.into_iter().filter(|p| wants(p)) {
        let status = std::process::Command::new(&exe)
            .env(PHASE_ENV, phase)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("e2e bench: phase {phase} failed ({s})");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("e2e bench: cannot start phase {phase}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Runs one phase (in its own process).
async fn run(phase: &str) -> anyhow::Result<()> {
    let wants = |name: &str| name == phase;
    if !PHASES.contains(&phase) {
        bail!("unknown phase {phase:?}; phases: {}", PHASES.join(", "));
    }
    let t = Instant::now();
    let pool = e2e::KeyPool::generate(16, 16)?;
    let n = BACKLOG.max(RETAINED).max((RATE * STEADY_SECS) as usize);
    let csrs = Arc::new(e2e::workload_csrs(&pool, n)?);
    println!(
        "driver: {n} istio-agent CSRs (16 RSA-2048 + 16 P-256 keys shared round-robin) built in {:.1} s, outside every measured window",
        t.elapsed().as_secs_f64()
    );
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&docs)?;
    if wants("backlog") {
        backlog::<IstioCsr>(&csrs[..BACKLOG], &docs).await?;
    }
    if wants("steady") {
        steady::<IstioCsr>(&csrs[..(RATE * STEADY_SECS) as usize], RATE, Some(&docs)).await?;
    }
    if wants("low") {
        steady::<IstioCsr>(&csrs[..(LOW_RATE * STEADY_SECS) as usize], LOW_RATE, None).await?;
    }
    if wants("csr-backlog") {
        backlog::<IstiodCsr>(&csrs[..BACKLOG], &docs).await?;
    }
    if wants("csr-steady") {
        steady::<IstiodCsr>(&csrs[..(RATE * STEADY_SECS) as usize], RATE, Some(&docs)).await?;
    }
    if wants("pcr-backlog") {
        backlog::<KubeletPcr>(&csrs[..BACKLOG], &docs).await?;
    }
    if wants("pcr-steady") {
        steady::<KubeletPcr>(&csrs[..(RATE * STEADY_SECS) as usize], RATE, Some(&docs)).await?;
    }
    if wants("rss") {
        match rss(&csrs[..RETAINED]).await {
            Ok(()) => {}
            Err(e) => println!("\n[rss] NOT MEASURED: {e:#}"),
        }
    }
    if wants("large") {
        // FIREFLY_E2E_LARGE sets another size (a quicker look at the same behaviour).
        let n = std::env::var("FIREFLY_E2E_LARGE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(LARGE_BACKLOG);
        large_backlog(&csrs, n).await?;
    }
    if wants("refusals") {
        refusals(&csrs, REFUSALS).await?;
    }
    if wants("takeover") {
        takeover(&csrs).await?;
    }
    Ok(())
}

type Csr = e2e::WorkloadCsr;

/// A front door the backlog and steady phases drive: who asks, how a request is made and
/// approved, which issuer it addresses, and which API the controller answers on. The phases
/// themselves (timing, API-call counts, latency, charts) are the same for every door.
trait Door: Clone + Send + Sync + 'static {
    /// The object the controller answers.
    type Object: e2e::Trackable;
    /// The request object, built before it is sent.
    type Request: Send + 'static;
    /// Prefix of the phase names (`""`, `"csr-"`).
    const PREFIX: &'static str;
    /// What the requests are, in the output.
    const REQUESTS: &'static str;
    /// What the end of a request is called (`Ready`, a certificate).
    const DONE: &'static str;
    /// The plural kube-sim counts this door's API calls under.
    const RESOURCE: &'static str;
    /// The charts' file names under docs/: (backlog, latency).
    const CHARTS: (&'static str, &'static str);
    /// Where the latency starts (`approval`, `creation`).
    const FROM: &'static str;
    /// The requester's own writes per request (a create, and an approval where the door has one).
    const DRIVER_WRITES: u64;

    /// kube-sim's options for this door.
    fn sim_options() -> kube_sim::SimOptions;
    /// The controller configuration's knobs.
    fn knobs() -> e2e::ControllerKnobs;
    /// Creates the issuer the requests address and waits until it is Ready.
    async fn ready_issuer(stack: &e2e::Stack) -> anyhow::Result<()>;
    /// The requester, with its own credentials.
    async fn driver(stack: &e2e::Stack) -> anyhow::Result<Self>;
    /// The API the requester watches for its answers.
    fn answers(&self) -> kube::Api<Self::Object>;
    /// The request of workload `i`, whose CSR is `csr`.
    fn request(i: usize, csr: &Csr) -> Self::Request;
    /// Creates, then approves (where the door has an approval), one request: its generated name
    /// and the instant the latency starts from (just before the approval, or the creation).
    fn create_and_approve(
        self,
        request: Self::Request,
    ) -> impl Future<Output = anyhow::Result<(String, Instant)>> + Send + 'static;
}

/// cert-manager's CertificateRequest, as istio-csr creates it and cert-manager's approver
/// approves it (status merge patch), for the Issuer `istio-system/firefly-istio`.
#[derive(Clone)]
struct IstioCsr(kube::Api<CertificateRequest>);

impl Door for IstioCsr {
    type Object = CertificateRequest;
    type Request = CertificateRequest;
    const PREFIX: &'static str = "";
    const REQUESTS: &'static str = "istio-csr requests";
    const DONE: &'static str = "Ready";
    const RESOURCE: &'static str = "certificaterequests";
    const CHARTS: (&'static str, &'static str) = ("perf-backlog.svg", "perf-latency.svg");
    const FROM: &'static str = "approval";
    const DRIVER_WRITES: u64 = 2;

    fn sim_options() -> kube_sim::SimOptions {
        kube_sim::SimOptions::default()
    }

    fn knobs() -> e2e::ControllerKnobs {
        e2e::ControllerKnobs::default()
    }

    async fn ready_issuer(stack: &e2e::Stack) -> anyhow::Result<()> {
        stack.create_issuer().await?;
        stack.wait_issuer_ready(PATIENCE).await
    }

    async fn driver(stack: &e2e::Stack) -> anyhow::Result<Self> {
        Ok(IstioCsr(stack.requests()))
    }

    fn answers(&self) -> kube::Api<CertificateRequest> {
        self.0.clone()
    }

    fn request(_: usize, (id, _, pem_text, _): &Csr) -> CertificateRequest {
        e2e::istio_csr_request(pem_text, id, e2e::ISSUER_NAME)
    }

    async fn create_and_approve(
        self,
        request: CertificateRequest,
    ) -> anyhow::Result<(String, Instant)> {
        e2e::create_and_approve(&self.0, &request).await
    }
}

/// The Kubernetes CertificateSigningRequest, as istiod acting as registration authority creates
/// it with its own ServiceAccount token (`generateName: csr-workload-`, the agent's CSR, istiod's
/// usages, `expirationSeconds: 86400`) and approves it through `/approval`, for the ClusterIssuer
/// `istio-ca` (signer `clusterissuers.firefly.venafi.com/istio-ca`). The approval is sent on the
/// copy the create returned (one PUT, no read), so every GET kube-sim counts is the controller's.
#[derive(Clone)]
struct IstiodCsr(kube::Api<CertificateSigningRequest>);

impl Door for IstiodCsr {
    type Object = CertificateSigningRequest;
    type Request = CertificateSigningRequest;
    const PREFIX: &'static str = "csr-";
    const REQUESTS: &'static str = "istiod CertificateSigningRequests";
    const DONE: &'static str = "with a certificate";
    const RESOURCE: &'static str = "certificatesigningrequests";
    const CHARTS: (&'static str, &'static str) = ("perf-csr-backlog.svg", "perf-csr-latency.svg");
    const FROM: &'static str = "approval";
    const DRIVER_WRITES: u64 = 2;

    fn sim_options() -> kube_sim::SimOptions {
        // The API server records istiod's identity in spec.username.
        kube_sim::SimOptions::authenticating()
    }

    fn knobs() -> e2e::ControllerKnobs {
        e2e::ControllerKnobs {
            certificate_signing_requests: true,
            ..e2e::ControllerKnobs::default()
        }
    }

    async fn ready_issuer(stack: &e2e::Stack) -> anyhow::Result<()> {
        stack.ready_mesh_cluster_issuer(PATIENCE).await
    }

    async fn driver(stack: &e2e::Stack) -> anyhow::Result<Self> {
        Ok(IstiodCsr(istiod::istiod_client(&stack.sim).await?))
    }

    fn answers(&self) -> kube::Api<CertificateSigningRequest> {
        self.0.clone()
    }

    fn request(_: usize, (_, _, pem_text, _): &Csr) -> CertificateSigningRequest {
        istiod::csr(
            istiod::CLUSTER_SIGNER,
            pem_text,
            &istiod::WORKLOAD_USAGES,
            Some(86400),
        )
    }

    async fn create_and_approve(
        self,
        request: CertificateSigningRequest,
    ) -> anyhow::Result<(String, Instant)> {
        istiod::create_and_approve(&self.0, &request).await
    }
}

/// The PodCertificateRequest (certificates.k8s.io/v1), as kube-sim's kubelets create it for
/// their pods (`system:node:<n>`, NodeRestriction on; each reads the pod, its ServiceAccount and
/// its node, generates the pod's P-256 key and sends the stub PKCS#10 request), for the signer
/// `firefly.venafi.com/istio-mtls`; no approval. Pod `pod-<i>` runs on node `i % PCR_NODES`.
#[derive(Clone)]
struct KubeletPcr {
    kubelets: Arc<Vec<kube_sim::kubelet::Kubelet>>,
    answers: kube::Api<pods::PodCertificateRequest>,
}

/// Nodes (kubelets) of the PodCertificateRequest phases.
const PCR_NODES: usize = 10;

impl Door for KubeletPcr {
    type Object = pods::PodCertificateRequest;
    type Request = usize;
    const PREFIX: &'static str = "pcr-";
    const REQUESTS: &'static str = "kubelet PodCertificateRequests";
    const DONE: &'static str = "Issued";
    const RESOURCE: &'static str = "podcertificaterequests";
    const CHARTS: (&'static str, &'static str) = ("perf-pcr-backlog.svg", "perf-pcr-latency.svg");
    const FROM: &'static str = "creation";
    const DRIVER_WRITES: u64 = 1;

    fn sim_options() -> kube_sim::SimOptions {
        // Kubelets act as their nodes, under NodeRestriction.
        kube_sim::SimOptions::authenticating()
    }

    fn knobs() -> e2e::ControllerKnobs {
        e2e::ControllerKnobs {
            pod_certificates: Some(pods::signer_config()),
            ..e2e::ControllerKnobs::default()
        }
    }

    async fn ready_issuer(_: &e2e::Stack) -> anyhow::Result<()> {
        // No issuer object: the signer is configured; the controller is up once started.
        Ok(())
    }

    async fn driver(stack: &e2e::Stack) -> anyhow::Result<Self> {
        let pods_needed = BACKLOG.max((RATE * STEADY_SECS) as usize);
        pods::put_pods(&stack.sim, 0..pods_needed, PCR_NODES)?;
        Ok(KubeletPcr {
            kubelets: Arc::new(pods::kubelets(&stack.sim, PCR_NODES).await?),
            answers: kube::Api::namespaced(stack.client.clone(), pods::NAMESPACE),
        })
    }

    fn answers(&self) -> kube::Api<pods::PodCertificateRequest> {
        self.answers.clone()
    }

    fn request(i: usize, _: &Csr) -> usize {
        i
    }

    /// The latency starts just before the kubelet sends the create (the goal is creation →
    /// Issued; until 2026-12-05 08:40 it started before the kubelet's three reads and its key
    /// generation, about 2 ms more at 1,000/s).
    async fn create_and_approve(self, i: usize) -> anyhow::Result<(String, Instant)> {
        let requested = pods::request(&self.kubelets[i % PCR_NODES], i).await?;
        Ok((requested.name, requested.sent))
    }
}

/// Creates and approves `csrs` through `door` with `in_flight` at once (a backlog is built while
/// no controller runs).
async fn create_approved<'a, D: Door>(
    door: &D,
    csrs: impl IntoIterator<Item = &'a Csr>,
    in_flight: usize,
) -> anyhow::Result<Vec<(String, Instant)>> {
    use futures::{StreamExt as _, TryStreamExt as _};
    futures::stream::iter(
        csrs.into_iter()
            .enumerate()
            .map(|(i, csr)| door.clone().create_and_approve(D::request(i, csr))),
    )
    .buffer_unordered(in_flight)
    .try_collect()
    .await
}

/// kube-sim's counts of the API calls on one resource (subresources included).
#[derive(Clone, Copy)]
struct Calls {
    writes: u64,
    status_patches: u64,
    gets: u64,
    lists: u64,
    watches: u64,
    access_reviews: u64,
}

impl Calls {
    fn now(sim: &kube_sim::KubeSim, resource: &str) -> Calls {
        Calls {
            writes: sim.write_count(resource),
            status_patches: sim.request_count("patch", &format!("{resource}/status")),
            gets: sim.request_count("get", resource),
            lists: sim.request_count("list", resource),
            watches: sim.request_count("watch", resource),
            access_reviews: sim.request_count("create", "subjectaccessreviews"),
        }
    }

    /// The calls made since `before`.
    fn since(sim: &kube_sim::KubeSim, resource: &str, before: Calls) -> Calls {
        let now = Calls::now(sim, resource);
        Calls {
            writes: now.writes - before.writes,
            status_patches: now.status_patches - before.status_patches,
            gets: now.gets - before.gets,
            lists: now.lists - before.lists,
            watches: now.watches - before.watches,
            access_reviews: now.access_reviews - before.access_reviews,
        }
    }
}

/// Backlog: N approved requests exist before the controller starts; time until all are answered.
async fn backlog<D: Door>(csrs: &[Csr], docs: &std::path::Path) -> anyhow::Result<()> {
    let n = csrs.len();
    println!(
        "\n[{}backlog] {n} {}{} waiting, then the controller starts",
        D::PREFIX,
        if D::DRIVER_WRITES > 1 {
            "approved "
        } else {
            ""
        },
        D::REQUESTS
    );
    let stack = e2e::Stack::start_with(D::sim_options()).await?;
    let config = stack.write_config("bench", &D::knobs())?;
    // A first controller makes the issuer Ready, then stops gracefully: the backlog then meets a
    // Ready issuer, as after a controller restart in a live cluster.
    let (boot, ctl) = stack.start_controller(&config, "warmup").await?;
    D::ready_issuer(&stack).await?;
    ctl.shutdown().await;
    drop(boot);

    let door = D::driver(&stack).await?;
    let t = Instant::now();
    create_approved(&door, csrs, 64).await?;
    println!(
        "  backlog built in {:.1} s (creates{})",
        t.elapsed().as_secs_f64(),
        if D::DRIVER_WRITES > 1 {
            " + approvals"
        } else {
            ""
        }
    );
    let tracker = e2e::ReadyTracker::start(door.answers()).await?;
    let before = Calls::now(&stack.sim, D::RESOURCE);

    let start = Instant::now();
    let (boot, ctl) = stack.start_controller(&config, "bench").await?;
    let started = start.elapsed();
    tracker
        .wait_terminal(n, PATIENCE, |_, _| {})
        .await
        .context("waiting for the backlog")?;
    let all_done = start.elapsed();
    let (issued, failed) = tracker.counts();
    if failed > 0 {
        bail!("{failed} of {n} backlog requests failed");
    }
    let calls = Calls::since(&stack.sim, D::RESOURCE, before);
    let twice = tracker
        .all()
        .iter()
        .filter(|(_, t)| t.certificates_seen > 1)
        .count();

    let mut done_at: Vec<f64> = tracker
        .all()
        .iter()
        .filter_map(|(_, t)| t.issued_at)
        .map(|i| i.saturating_duration_since(start).as_secs_f64())
        .collect();
    done_at.sort_by(f64::total_cmp);
    let first_done = done_at.first().copied().unwrap_or_default();
    let drain = all_done.as_secs_f64() - first_done;
    println!(
        "  controller start (bootstrap: TLSPC login + sub-CA) → admin up: {:.3} s",
        started.as_secs_f64()
    );
    println!(
        "  all {issued} {} {:.2} s after the controller started (goal ≤ {} s: {}); first at {:.2} s, \
         drain {:.2} s = {:.0} requests/s; load average {}",
        D::DONE,
        all_done.as_secs_f64(),
        BACKLOG_GOAL.as_secs(),
        verdict(all_done <= BACKLOG_GOAL),
        first_done,
        drain,
        n as f64 / drain.max(1e-9),
        load_average()
    );
    println!(
        "  {} API calls during the drain: {} writes ({} status patches) = {:.3} per issued request (goal 1: {}); \
         {} GETs = {:.3} per request (goal 0: {}); {} lists, {} watches; {} SubjectAccessReviews (counted apart)",
        D::RESOURCE,
        calls.writes,
        calls.status_patches,
        calls.writes as f64 / n as f64,
        verdict(calls.writes as usize == n),
        calls.gets,
        calls.gets as f64 / n as f64,
        verdict(calls.gets == 0),
        calls.lists,
        calls.watches,
        calls.access_reviews,
    );
    println!("  requests carrying more than one certificate over their life: {twice}");

    // Chart: requests answered over time.
    let step = (done_at.len() / 400).max(1);
    let mut points: Vec<(f64, f64)> = vec![(0.0, 0.0)];
    points.extend(
        done_at
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || *i + 1 == done_at.len())
            .map(|(i, t)| (*t, (i + 1) as f64)),
    );
    let svg = e2e::svg_chart(
        &e2e::ChartText {
            title: format!("Backlog of {n} approved {} → {}", D::REQUESTS, D::DONE),
            subtitle: format!(
                "all {} {:.2} s after controller start (goal ≤ {} s); {:.3} writes and {:.3} GETs per request",
                D::DONE,
                all_done.as_secs_f64(),
                BACKLOG_GOAL.as_secs(),
                calls.writes as f64 / n as f64,
                calls.gets as f64 / n as f64
            ),
            x_label: "seconds since the controller started".into(),
            y_label: format!("requests {}", D::DONE),
        },
        e2e::ChartKind::Lines,
        &[e2e::Series {
            label: format!("{} (seen by an independent watch)", D::DONE),
            colour: "steelblue",
            points,
        }],
        Some((
            BACKLOG_GOAL.as_secs_f64(),
            &format!("goal {} s", BACKLOG_GOAL.as_secs()),
        )),
    );
    let path = docs.join(D::CHARTS.0);
    std::fs::write(&path, svg)?;
    println!("  wrote {}", path.display());
    ctl.shutdown().await;
    drop(boot);
    Ok(())
}

/// Steady: requests created and approved at `rate`/s while the controller runs; latency from
/// just before each approval to the watch event showing the answer.
async fn steady<D: Door>(
    csrs: &[Csr],
    rate: u64,
    docs: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let n = csrs.len();
    println!(
        "\n[{}steady] {n} {} at {rate}/s ({}; open loop)",
        D::PREFIX,
        D::REQUESTS,
        if D::DRIVER_WRITES > 1 {
            "create, then approve"
        } else {
            "create"
        }
    );
    let stack = e2e::Stack::start_with(D::sim_options()).await?;
    let config = stack.write_config("bench", &D::knobs())?;
    let (boot, ctl) = stack.start_controller(&config, "bench").await?;
    D::ready_issuer(&stack).await?;
    let door = D::driver(&stack).await?;
    let tracker = e2e::ReadyTracker::start(door.answers()).await?;
    let before = Calls::now(&stack.sim, D::RESOURCE);

    let cpu_before = e2e::cpu_seconds(std::process::id())?;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, csr) in csrs.iter().enumerate() {
        tokio::time::sleep_until(start + Duration::from_micros(i as u64 * 1_000_000 / rate)).await;
        let request = D::request(i, csr);
        tasks.push(tokio::spawn(door.clone().create_and_approve(request)));
    }
    let offered = start.elapsed();
    let mut approvals = Vec::with_capacity(n);
    for t in tasks {
        approvals.push(t.await.context("driver task")??);
    }
    tracker.wait_terminal(n, PATIENCE, |_, _| {}).await?;
    let busy = e2e::cpu_seconds(std::process::id())? - cpu_before;
    let wall = start.elapsed().as_secs_f64();
    let (_, failed) = tracker.counts();
    if failed > 0 {
        bail!("{failed} of {n} steady requests failed");
    }
    let mut latencies = Vec::with_capacity(n);
    // Where in the run the requests slower than the goal were approved, by second: a start-up
    // transient shows apart from a steady tail.
    let mut slow_by_second = vec![0usize; STEADY_SECS as usize + 1];
    for (name, approved_at) in &approvals {
        let t = tracker.get(name).context("request never seen")?;
        let done = t.issued_at.context("request not issued")?;
        let latency = done.saturating_duration_since(*approved_at);
        if latency > P99_GOAL {
            let second = approved_at
                .saturating_duration_since(start.into_std())
                .as_secs() as usize;
            slow_by_second[second.min(STEADY_SECS as usize)] += 1;
        }
        latencies.push(latency);
    }
    let calls = Calls::since(&stack.sim, D::RESOURCE, before);
    let s = e2e::summarize(&mut latencies);
    println!(
        "  offered {:.0} requests/s ({n} in {:.2} s)",
        n as f64 / offered.as_secs_f64(),
        offered.as_secs_f64()
    );
    println!(
        "  {} → {}: p50 {}  p90 {}  p99 {} (goal ≤ {}: {})  max {}  mean {}",
        D::FROM,
        D::DONE,
        e2e::ms(s.p50),
        e2e::ms(s.p90),
        e2e::ms(s.p99),
        e2e::ms(P99_GOAL),
        verdict(s.p99 <= P99_GOAL),
        e2e::ms(s.max),
        e2e::ms(s.mean)
    );
    println!(
        "  requests over {} by second of the run of their {}: {slow_by_second:?}",
        e2e::ms(P99_GOAL),
        D::FROM
    );
    println!(
        "  CPU of the whole bench process (kube-sim, controller, driver, watch): {busy:.2} s over {wall:.2} s = {:.2} of {} cores busy, {:.0} µs per request; load average {}",
        busy / wall,
        num_cpus(),
        busy * 1e6 / n as f64,
        load_average()
    );
    println!(
        "  {} API calls: {} writes = {n} × {} by the requester (create{}) + {} controller writes ({:.3} per issued request; {} status patches); {} GETs; {} SubjectAccessReviews",
        D::RESOURCE,
        calls.writes,
        D::DRIVER_WRITES,
        if D::DRIVER_WRITES > 1 {
            ", approval"
        } else {
            ""
        },
        calls.writes as i64 - (D::DRIVER_WRITES * n as u64) as i64,
        (calls.writes as f64 - (D::DRIVER_WRITES * n as u64) as f64) / n as f64,
        calls.status_patches,
        calls.gets,
        calls.access_reviews,
    );
    let Some(docs) = docs else {
        ctl.shutdown().await;
        drop(boot);
        return Ok(());
    };
    let svg = e2e::svg_chart(
        &e2e::ChartText {
            title: format!(
                "{} → {} latency at {rate} requests/s ({n} {})",
                D::FROM,
                D::DONE,
                D::REQUESTS
            ),
            subtitle: format!(
                "p50 {}  p90 {}  p99 {} (goal ≤ {})  max {}",
                e2e::ms(s.p50),
                e2e::ms(s.p90),
                e2e::ms(s.p99),
                e2e::ms(P99_GOAL),
                e2e::ms(s.max)
            ),
            x_label: "latency (ms)".into(),
            y_label: "requests".into(),
        },
        e2e::ChartKind::Bars,
        &[e2e::Series {
            label: "requests per latency bucket".into(),
            colour: "seagreen",
            points: e2e::latency_histogram_ms(&latencies, 40),
        }],
        Some((s.p99.as_secs_f64() * 1e3, "p99")),
    );
    let path = docs.join(D::CHARTS.1);
    std::fs::write(&path, svg)?;
    println!("  wrote {}", path.display());
    ctl.shutdown().await;
    drop(boot);
    Ok(())
}

/// Refusal storm: `n` requests from a requester the controller does not allow wait, then the
/// controller starts; time until all are Failed, per quarter, so a refusal that grows dearer as
/// refusals pile up (events remembered without bound, say) shows as a slower last quarter.
async fn refusals(csrs: &[Csr], n: usize) -> anyhow::Result<()> {
    use futures::{StreamExt as _, TryStreamExt as _};
    const INTRUDER: &str = "system:serviceaccount:sandbox:intruder";
    println!(
        "\n[refusals] {n} approved istio-csr requests from {INTRUDER} (not an allowed requester) waiting, then the controller starts"
    );
    let stack = e2e::Stack::start().await?;
    let config = stack.write_config("bench", &e2e::ControllerKnobs::default())?;
    let (boot, ctl) = stack.start_controller(&config, "warmup").await?;
    IstioCsr::ready_issuer(&stack).await?;
    ctl.shutdown().await;
    drop(boot);

    let api = stack.requests();
    futures::stream::iter((0..n).map(|i| {
        let (id, _, pem_text, _) = &csrs[i % csrs.len()];
        let mut request = e2e::istio_csr_request(pem_text, id, e2e::ISSUER_NAME);
        request.spec.username = Some(INTRUDER.to_owned());
        let api = api.clone();
        async move { e2e::create_and_approve(&api, &request).await }
    }))
    .buffer_unordered(64)
    .try_collect::<Vec<_>>()
    .await?;
    let tracker = e2e::ReadyTracker::start(api).await?;
    let before = Calls::now(&stack.sim, IstioCsr::RESOURCE);
    let events_before = stack.sim.request_count("create", "events");

    let start = Instant::now();
    let (boot, ctl) = stack.start_controller(&config, "bench").await?;
    let mut quarters: Vec<f64> = Vec::new();
    tracker
        .wait_terminal(n, PATIENCE, |issued, failed| {
            while quarters.len() < 4 && issued + failed >= n * (quarters.len() + 1) / 4 {
                quarters.push(start.elapsed().as_secs_f64());
            }
        })
        .await
        .context("waiting for the refusals")?;
    let all_done = start.elapsed().as_secs_f64();
    let (issued, failed) = tracker.counts();
    if issued > 0 {
        bail!("{issued} requests from {INTRUDER} were issued");
    }
    let reason = tracker.first_failure().unwrap_or_default();
    let calls = Calls::since(&stack.sim, IstioCsr::RESOURCE, before);
    let events = stack.sim.request_count("create", "events") - events_before;
    let per_quarter: Vec<String> = quarters
        .iter()
        .scan(0.0, |last, &t| {
            let took = t - *last;
            *last = t;
            Some(format!("{took:.2} s"))
        })
        .collect();
    println!(
        "  all {failed} Failed {all_done:.2} s after the controller started = {:.0} refusals/s; each quarter took {} (a last quarter slower than the first means a refusal grows dearer); load average {}",
        n as f64 / all_done.max(1e-9),
        per_quarter.join(", "),
        load_average()
    );
    println!(
        "  per refusal: {:.3} status writes, {:.3} events created, {:.3} GETs; e.g. {reason}",
        calls.writes as f64 / n as f64,
        events as f64 / n as f64,
        calls.gets as f64 / n as f64,
    );
    ctl.shutdown().await;
    drop(boot);
    Ok(())
}

/// Resident memory: `firefly run` as a child process against kube-sim and the mock in this
/// process; VmRSS delta ÷ retained requests.
async fn rss(csrs: &[Csr]) -> anyhow::Result<()> {
    let n = csrs.len();
    println!("\n[rss] `firefly run` in its own process, {n} Ready requests retained");
    let stack = e2e::Stack::start().await?;
    let config = stack.write_config("child", &e2e::ControllerKnobs::default())?;
    let (mut child, pid) = spawn_controller(&stack, &config, "child.log")?;
    stack.create_issuer().await?;
    wait_issuer_ready_or_explain(&stack, &mut child, "child.log").await?;
    // Let start-up allocations settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = e2e::vm_rss_kib(pid)?;
    let cpu_before = e2e::cpu_seconds(pid)?;
    let door = IstioCsr::driver(&stack).await?;
    let tracker = e2e::ReadyTracker::start(door.answers()).await?;
    create_approved(&door, csrs, 64).await?;
    tracker.wait_terminal(n, PATIENCE, |_, _| {}).await?;
    let (issued, failed) = tracker.counts();
    if failed > 0 {
        bail!("{failed} of {n} requests failed");
    }
    let cpu = e2e::cpu_seconds(pid)? - cpu_before;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_once = e2e::vm_rss_kib(pid)?;
    // `firefly run` gives the burst's freed heap back once a 5 s window has been quiet (see
    // src/heap.rs): the retained figure is read after that, as in the `large` phase.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = e2e::vm_rss_kib(pid)?;
    let per_at_once = (at_once.saturating_sub(before) * 1024) as f64 / n as f64;
    let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    println!(
        "  VmRSS {before} KiB before; 2 s after the last Ready {at_once} KiB ({per_at_once:.0} bytes per request); \
         10 s later {after} KiB with {issued} Ready requests retained: {per:.0} bytes per request (goal ≤ {RSS_GOAL_BYTES:.0}: {})",
        verdict(per <= RSS_GOAL_BYTES)
    );
    println!(
        "  controller process CPU for the {n} requests (watch decoding, decision, signing, status write): {cpu:.2} s = {:.0} µs per issued request",
        cpu * 1e6 / n as f64
    );
    print_cpu_against_floor(cpu * 1e6 / n as f64, csrs);
    // More rounds of the same size tell memory that grows with the requests retained (each
    // round adds as much as the first) from what one burst leaves behind once (later rounds add
    // nothing). FIREFLY_E2E_RSS_ROUNDS sets how many rounds in all (default RSS_ROUNDS).
    let rounds: usize = std::env::var("FIREFLY_E2E_RSS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RSS_ROUNDS);
    let mut last = after;
    for round in 2..=rounds {
        create_approved(&door, csrs, 64).await?;
        tracker
            .wait_terminal(round * n, PATIENCE, |_, _| {})
            .await?;
        tokio::time::sleep(Duration::from_secs(12)).await;
        let now = e2e::vm_rss_kib(pid)?;
        println!(
            "  round {round}: {} Ready requests retained, VmRSS {now} KiB: {:+.0} bytes per request of this round, {:.0} per request retained since the start",
            round * n,
            (now as f64 - last as f64) * 1024.0 / n as f64,
            (now.saturating_sub(before) * 1024) as f64 / (round * n) as f64
        );
        last = now;
    }
    child.start_kill()?;
    let _ = child.wait().await;
    Ok(())
}

/// Large backlog: `LARGE_BACKLOG` approved requests exist before `firefly run` (its own process)
/// starts; time until all are Ready, the controller's resident-memory growth over an idle
/// controller of the same configuration, and how the CPU splits between the controller and this
/// process (kube-sim, the mock TLSPC and the watch that tracks Ready).
async fn large_backlog(csrs: &[Csr], n: usize) -> anyhow::Result<()> {
    println!(
        "\n[large] {n} approved istio-csr requests waiting, then `firefly run` (own process) starts"
    );
    // FIREFLY_E2E_HISTORY: kube-sim's watch history length (default 20,000 events);
    // FIREFLY_E2E_WATCH_BUFFER: how far a watch may fall behind before kube-sim closes it
    // (default 65,536 events). Small values reproduce a large backlog's re-list at small n.
    let knob = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let mut options = kube_sim::SimOptions::default();
    if let Some(history_limit) = knob("FIREFLY_E2E_HISTORY") {
        options.history_limit = history_limit;
    }
    if let Some(watch_buffer) = knob("FIREFLY_E2E_WATCH_BUFFER") {
        options.watch_buffer = watch_buffer;
    }
    let stack = e2e::Stack::start_with(options).await?;
    let mut knobs = e2e::ControllerKnobs::default();
    // FIREFLY_E2E_LOG: the controller's `logging.level` (a tracing filter) for a closer look.
    if let Ok(level) = std::env::var("FIREFLY_E2E_LOG") {
        knobs.log_level = Box::leak(level.into_boxed_str());
    }
    let config = stack.write_config("child", &knobs)?;
    // An idle controller of the same configuration: the Issuer becomes Ready and the baseline
    // resident memory is taken with no request retained.
    let (mut idle, idle_pid) = spawn_controller(&stack, &config, "idle.log")?;
    stack.create_issuer().await?;
    wait_issuer_ready_or_explain(&stack, &mut idle, "idle.log").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = e2e::vm_rss_kib(idle_pid)?;
    idle.start_kill()?;
    let _ = idle.wait().await;

    let door = IstioCsr::driver(&stack).await?;
    let api = door.answers();
    let t = Instant::now();
    create_approved(&door, csrs.iter().cycle().take(n), 64).await?;
    println!(
        "  backlog built in {:.1} s (creates + approvals; {} distinct CSRs reused)",
        t.elapsed().as_secs_f64(),
        csrs.len().min(n)
    );
    let tracker = e2e::ReadyTracker::start(api.clone()).await?;
    let me = std::process::id();
    let sim_cpu_before = e2e::cpu_seconds(me)?;
    let start = Instant::now();
    let (mut child, pid) = spawn_controller(&stack, &config, "child.log")?;
    // FIREFLY_E2E_PATIENCE: seconds to wait for the backlog (default the phase's patience).
    let patience = std::env::var("FIREFLY_E2E_PATIENCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(PATIENCE, Duration::from_secs);
    let waited = tracker.wait_terminal(n, patience, |_, _| {}).await;
    let all_ready = start.elapsed();
    if let Err(e) = waited {
        let why = explain_stall(&stack, &api, &mut child).await?;
        bail!("waiting for the large backlog: {e:#}; {why}");
    }
    let sim_cpu = e2e::cpu_seconds(me)? - sim_cpu_before;
    let cpu = e2e::cpu_seconds(pid)?;
    let first_ready = tracker
        .all()
        .iter()
        .filter_map(|(_, t)| t.issued_at)
        .min()
        .map_or(0.0, |i| i.saturating_duration_since(start).as_secs_f64());
    let (issued, failed) = tracker.counts();
    if failed > 0 {
        bail!("{failed} of {n} large-backlog requests failed");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_at_once = e2e::vm_rss_kib(pid)?;
    // The allocator gives freed pages back as its threads allocate again: a little more traffic
    // (1,000 requests, as a live cluster keeps sending) and a pause, then the figure.
    let more = 1_000.min(csrs.len());
    create_approved(&door, &csrs[..more], 64).await?;
    if let Err(e) = tracker
        .wait_terminal(n + more, AFTER_BACKLOG_PATIENCE, |_, _| {})
        .await
    {
        let why = explain_stall(&stack, &api, &mut child).await?;
        bail!("waiting for the requests after the backlog: {e:#}; {why}");
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rss = e2e::vm_rss_kib(pid)?;
    println!(
        "  controller VmRSS 2 s after the drain {rss_at_once} KiB; after {more} more requests and 10 s: {rss} KiB"
    );
    let per = (rss.saturating_sub(idle_rss) * 1024) as f64 / n as f64;
    println!(
        "  all {issued} Ready {:.2} s after `firefly run` started (goal ≤ {} s: {}), bootstrap included; \
         first at {first_ready:.2} s (start, bootstrap and the first list), then {:.0} requests/s",
        all_ready.as_secs_f64(),
        LARGE_BACKLOG_GOAL.as_secs(),
        verdict(all_ready <= LARGE_BACKLOG_GOAL),
        n as f64 / (all_ready.as_secs_f64() - first_ready).max(1e-9)
    );
    println!(
        "  CPU in that window: controller {cpu:.2} s (whole process life), this process (kube-sim + mock TLSPC + Ready watch) {sim_cpu:.2} s; \
         wall {:.2} s on {} cores, load average {}",
        all_ready.as_secs_f64(),
        num_cpus(),
        load_average()
    );
    println!(
        "  controller VmRSS {idle_rss} KiB idle, {rss} KiB with {n} Ready requests retained: {per:.0} bytes per request (goal ≤ {LARGE_RSS_GOAL_BYTES:.0}: {})",
        verdict(per <= LARGE_RSS_GOAL_BYTES)
    );
    print_cpu_against_floor(cpu * 1e6 / n as f64, csrs);
    let patches = stack
        .sim
        .request_count("patch", "certificaterequests/status");
    println!(
        "  kube-sim served {} lists, {} watches and {patches} status patches of CertificateRequests ({:.3} per request: its approval and the controller's writes, goal 2.000) and closed {} watches that fell behind (each re-watched or re-listed)",
        stack.sim.request_count("list", "certificaterequests"),
        stack.sim.request_count("watch", "certificaterequests"),
        patches as f64 / (n + more) as f64,
        stack.sim.watches_closed_behind()
    );
    if let Ok(keep) = std::env::var("FIREFLY_E2E_KEEP_LOG") {
        std::fs::copy(stack.dir.path().join("child.log"), &keep)?;
    }
    child.start_kill()?;
    let _ = child.wait().await;
    Ok(())
}

/// Tells a stuck controller from a stuck tracker: what the server holds, the controller's state
/// and its last log lines (the whole log is copied to `FIREFLY_E2E_KEEP_LOG` when set).
async fn explain_stall(
    stack: &e2e::Stack,
    api: &kube::Api<firefly::crd::CertificateRequest>,
    child: &mut tokio::process::Child,
) -> anyhow::Result<String> {
    let listed = api.list(&Default::default()).await?;
    let with_certificate = listed
        .items
        .iter()
        .filter(|cr| cr.status.as_ref().is_some_and(|s| s.certificate.is_some()))
        .count();
    let status = child.try_wait()?;
    let log = std::fs::read_to_string(stack.dir.path().join("child.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    if let Ok(keep) = std::env::var("FIREFLY_E2E_KEEP_LOG") {
        std::fs::write(&keep, &log)?;
    }
    let sim = &stack.sim;
    Ok(format!(
        "the server holds {} requests, {with_certificate} with a certificate; it served {} lists, {} watches and {} status patches of them and closed {} watches that fell behind; controller status {status:?}; its last log lines:\n{}",
        listed.items.len(),
        sim.request_count("list", "certificaterequests"),
        sim.request_count("watch", "certificaterequests"),
        sim.request_count("patch", "certificaterequests/status"),
        sim.watches_closed_behind(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

/// Leader handover with two `firefly run` processes on the product's default lease timings
/// (15 s / 10 s / 2 s) while requests arrive at `TAKEOVER_RATE`: the leader is stopped with
/// SIGTERM (a rolling update: it releases the Lease and a standby takes it at its next retry),
/// then, with the first replica back as a standby, the new leader is killed with SIGKILL (a node
/// lost: the Lease must expire first). For each, how long no request became Ready and the
/// slowest approval→Ready of the requests approved around the stop.
async fn takeover(csrs: &[Csr]) -> anyhow::Result<()> {
    let (lease, renew, retry) = DEFAULT_LEASE;
    println!(
        "\n[takeover] two `firefly run` replicas, leader election {lease}/{renew}/{retry}, {TAKEOVER_RATE} requests/s"
    );
    let stack = e2e::Stack::start().await?;
    let knobs = e2e::ControllerKnobs {
        leader_election: true,
        lease_timings: DEFAULT_LEASE,
        ..e2e::ControllerKnobs::default()
    };
    let config = stack.write_config("takeover", &knobs)?;
    // The first replica leads: it alone runs when the issuer turns Ready.
    let (mut first, first_pid) = spawn_controller(&stack, &config, "first.log")?;
    stack.create_issuer().await?;
    wait_issuer_ready_or_explain(&stack, &mut first, "first.log").await?;
    let (second, second_pid) = spawn_controller(&stack, &config, "second.log")?;
    // The standby starts, bootstraps its own sub-CA and reads the Lease.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let door = IstioCsr::driver(&stack).await?;
    let tracker = e2e::ReadyTracker::start(door.answers()).await?;
    let start = Instant::now();
    let stop_driving = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let driver = {
        let (door, stop, csrs) = (door.clone(), stop_driving.clone(), csrs.to_vec());
        tokio::spawn(async move {
            let begin = tokio::time::Instant::now();
            let mut tasks = Vec::new();
            for (i, csr) in csrs.iter().cycle().enumerate() {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep_until(
                    begin + Duration::from_micros(i as u64 * 1_000_000 / TAKEOVER_RATE),
                )
                .await;
                tasks.push(tokio::spawn(
                    door.clone().create_and_approve(IstioCsr::request(i, csr)),
                ));
            }
            let mut approvals = Vec::with_capacity(tasks.len());
            for t in tasks {
                approvals.push(t.await.context("driver task")??);
            }
            anyhow::Ok(approvals)
        })
    };

    // Rolling updates: the leader gets SIGTERM and is replaced by a new standby, four times. A
    // standby tries the Lease every retry period, so each stop comes half a second later in that
    // cycle than the one before: together they cover it.
    let (mut leader, mut leader_pid, mut standby, mut standby_pid) =
        (first, first_pid, second, second_pid);
    let holder = || {
        support::cluster::lease_holder(&stack.sim, "venafi", "firefly-controller")
            .unwrap_or_default()
    };
    let mut terms = Vec::new();
    for round in 0..TAKEOVER_ROUNDS {
        tokio::time::sleep(Duration::from_millis(3_000 + 500 * u64::from(round))).await;
        let old = holder();
        let term_at = Instant::now();
        signal(leader_pid, "TERM")?;
        let exit = tokio::time::timeout(PATIENCE, leader.wait())
            .await
            .context("the leader did not exit after SIGTERM")??;
        terms.push((term_at, term_at.elapsed(), exit));
        // The standby takes over; only then does a new standby start (a replacement started
        // earlier could take the released Lease first, at its start).
        kube_sim::wait_for(PATIENCE, || async {
            let now = holder();
            !now.is_empty() && now != old
        })
        .await
        .context("the standby never took the Lease")?;
        let (next, next_pid) =
            spawn_controller(&stack, &config, &format!("replica-{}.log", round + 3))?;
        (leader, leader_pid, standby, standby_pid) = (standby, standby_pid, next, next_pid);
    }
    // A node lost: the leader is killed and the Lease must expire before the standby leads.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kill_at = Instant::now();
    signal(leader_pid, "KILL")?;
    let _ = leader.wait().await;
    tokio::time::sleep(Duration::from_secs(22)).await;
    stop_driving.store(true, std::sync::atomic::Ordering::Relaxed);
    let approvals = driver.await.context("driver")??;
    let n = approvals.len();
    tracker.wait_terminal(n, PATIENCE, |_, _| {}).await?;
    let (_, failed) = tracker.counts();
    if failed > 0 {
        bail!("{failed} of {n} takeover requests failed");
    }
    let _ = standby.start_kill();
    let _ = standby_pid;

    let mut ready_at: Vec<Instant> = Vec::with_capacity(n);
    let mut latencies: Vec<(Instant, Duration)> = Vec::with_capacity(n);
    for (name, approved_at) in &approvals {
        let done = tracker
            .get(name)
            .and_then(|t| t.issued_at)
            .context("request not issued")?;
        ready_at.push(done);
        latencies.push((*approved_at, done.saturating_duration_since(*approved_at)));
    }
    ready_at.sort();
    // Each stop is judged until the next one (or for 20 s after the last).
    let mut stops: Vec<Instant> = terms.iter().map(|(at, _, _)| *at).collect();
    stops.push(kill_at);
    let report = |what: &str, i: usize, bound: &str| {
        let at = stops[i];
        let until = stops
            .get(i + 1)
            .copied()
            .unwrap_or(at + Duration::from_secs(20));
        // The longest stretch without a Ready that ends in the window (it may start before).
        let gap = ready_at
            .windows(2)
            .filter(|w| w[1] > at && w[1] <= until)
            .map(|w| w[1].saturating_duration_since(w[0]))
            .max()
            .unwrap_or_default();
        // The requests approved from 1 s before the stop until the next stop.
        let slowest = latencies
            .iter()
            .filter(|(approved, _)| *approved + Duration::from_secs(1) >= at && *approved < until)
            .map(|(_, l)| *l)
            .max()
            .unwrap_or_default();
        println!(
            "  {what}: no request Ready for {:.2} s; slowest approval→Ready of the requests approved from 1 s before: {:.2} s ({bound})",
            gap.as_secs_f64(),
            slowest.as_secs_f64()
        );
    };
    println!(
        "  {n} requests over {:.0} s, all Ready",
        start.elapsed().as_secs_f64()
    );
    for (round, (_, exited, exit)) in terms.iter().enumerate() {
        report(
            &format!(
                "SIGTERM {} (Lease released; the leader exited {:.2} s after it, {exit})",
                round + 1,
                exited.as_secs_f64()
            ),
            round,
            &format!(
                "expected: the new leader's start, as the standby sees the release through its \
                 watch of the Lease (without the watch, up to the retry period, {retry})"
            ),
        );
    }
    report(
        "SIGKILL (Lease left to expire)",
        terms.len(),
        &format!("expected up to the lease duration plus the retry period, {lease} + {retry}"),
    );
    Ok(())
}

/// Sends `signal` (`TERM`, `KILL`) to process `pid` with kill(1).
fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed ({status})");
    Ok(())
}

/// Starts `firefly run -c config` as a child process logging to `log` in the stack's directory.
fn spawn_controller(
    stack: &e2e::Stack,
    config: &std::path::Path,
    log: &str,
) -> anyhow::Result<(tokio::process::Child, u32)> {
    let log = std::fs::File::create(stack.dir.path().join(log))?;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_firefly"))
        .arg("run")
        .arg("-c")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("spawning firefly run")?;
    let pid = child.id().context("child has no pid")?;
    Ok((child, pid))
}

/// Waits for the Issuer to be Ready; on failure the error carries the child's status and the
/// last lines of its log.
async fn wait_issuer_ready_or_explain(
    stack: &e2e::Stack,
    child: &mut tokio::process::Child,
    log: &str,
) -> anyhow::Result<()> {
    if let Err(e) = stack.wait_issuer_ready(Duration::from_secs(60)).await {
        let status = child.try_wait()?;
        let log = std::fs::read_to_string(stack.dir.path().join(log)).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        bail!(
            "{e}; child status {status:?}; its last log lines: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    Ok(())
}

/// Prints the controller's CPU per issued request against the crypto floor measured now.
fn print_cpu_against_floor(cpu_us_per_request: f64, csrs: &[Csr]) {
    match crypto_floor_us(csrs) {
        Ok(floor) => println!(
            "  crypto floor (CSR verify in this run's key mix + P-256 leaf sign + leaf verify, aws-lc-rs, one core): {floor:.1} µs; \
             controller CPU per issued request ÷ floor = {:.2} (goal ≤ {CPU_FLOOR_GOAL}: {})",
            cpu_us_per_request / floor,
            verdict(cpu_us_per_request / floor <= CPU_FLOOR_GOAL)
        ),
        Err(e) => println!("  crypto floor NOT MEASURED: {e:#}"),
    }
}

/// Microseconds of pure crypto one issued request needs at the least: verifying its CSR's
/// signature (RSA-2048 PKCS#1 or P-256 ECDSA, weighted by `csrs`), signing the leaf with a P-256
/// sub-CA key and verifying that signature. Best of five rounds.
fn crypto_floor_us(csrs: &[Csr]) -> anyhow::Result<f64> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey};
    let rng = SystemRandom::new();
    let message = vec![0x5a_u8; 600]; // about a leaf's or a CSR's to-be-signed size
    let ec_pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("P-256 key generation failed"))?;
    let ec = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        ec_pkcs8.as_ref(),
    )
    .map_err(|_| anyhow::anyhow!("P-256 key parse failed"))?;
    let ec_public = UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        ec.public_key().as_ref().to_vec(),
    );
    let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
    let rsa_public = UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        rsa.public_key().as_ref().to_vec(),
    );
    let mut rsa_sig = vec![0; rsa.public_modulus_len()];
    rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, &message, &mut rsa_sig)
        .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
    let ec_sig = ec
        .sign(&rng, &message)
        .map_err(|_| anyhow::anyhow!("P-256 signing failed"))?;
    let per_op = |f: &mut dyn FnMut() -> bool| -> anyhow::Result<f64> {
        const N: u32 = 2_000;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..N {
                anyhow::ensure!(f(), "a floor operation failed");
            }
            best = best.min(t.elapsed().as_secs_f64() * 1e6 / f64::from(N));
        }
        Ok(best)
    };
    let rsa_verify = per_op(&mut || rsa_public.verify(&message, &rsa_sig).is_ok())?;
    let ec_verify = per_op(&mut || ec_public.verify(&message, ec_sig.as_ref()).is_ok())?;
    let ec_sign = per_op(&mut || ec.sign(&rng, &message).is_ok())?;
    let rsa_share = csrs
        .iter()
        .filter(|(_, kind, _, _)| matches!(kind, support::istio::KeyKind::Rsa2048))
        .count() as f64
        / csrs.len().max(1) as f64;
    let csr_verify = rsa_share * rsa_verify + (1.0 - rsa_share) * ec_verify;
    Ok(csr_verify + ec_sign + ec_verify)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// The 1-minute load average, as `/proc/loadavg` prints it ("?" when unreadable).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
