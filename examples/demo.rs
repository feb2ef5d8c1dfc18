//! The demo (README's first command, `cargo run --release --example demo`): kube-sim, the mock
//! TLSPC (shipped seed) and the controller in one process; it plays istio-csr and cert-manager's
//! approver for 1,000 workloads, then shows one issued leaf, the chain verification, one SVID
//! issued to istiod acting as registration authority through the Kubernetes CSR API, and the
//! throughput and latency figures. A second act has kubelets (kube-sim's, as `system:node:<n>`)
//! request pod certificates for 1,000 pods from the same controller through the
//! PodCertificateRequest API: one credential bundle decoded and verified against the signer's
//! ClusterTrustBundle (which the controller publishes), and
//! throughput. Exits non-zero with the reason
//! on any failure.
//!
//! Runs as an ordinary user without any capability: the sub-CA key is locked with lock mode
//! `keyPages`, which fits the default `RLIMIT_MEMLOCK`.

use support::e2e;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};

/// Workloads the demo plays istio-csr for.
const WORKLOADS: usize = 1_000;
/// RSA-2048 keys generated up front (RSA keygen costs tens of milliseconds each); workloads share
/// them round-robin.
const RSA_KEYS: usize = 16;
/// P-256 keys generated up front.
const P256_KEYS: usize = 16;
/// Requests istio-csr has in flight at once.
const IN_FLIGHT: usize = 64;
/// Pods whose kubelets request a pod certificate in the second act.
const PODS: usize = 1_000;
/// Nodes the pods are spread over (one kubelet each).
const NODES: usize = 10;
/// Upper bound for every wait: far above the few seconds the demo takes, so a stuck run ends.
const PATIENCE: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo failed: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ndemo FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> anyhow::Result<()> {
    let demo_start = Instant::now();
    println!(
        "Firefly in Rust — demo. Act 1: istio-csr + cert-manager approver (and istiod through the CSR API) against\n\
         the controller; act 2: kubelets requesting pod certificates from the same controller\n"
    );

    let t = Instant::now();
    let pool = e2e::KeyPool::generate(RSA_KEYS, P256_KEYS)?;
    let csrs = Arc::new(e2e::workload_csrs(&pool, WORKLOADS)?);
    println!(
        "[1/9] {WORKLOADS} istio-agent CSRs (O=, one critical URI SAN) built in {:.2} s; half RSA-2048, half P-256.\n      \
         RSA keygen is slow, so {} RSA-2048 and {} P-256 keys are generated once and shared round-robin\n      \
         (every CSR is still its own signed request with its own SPIFFE ID).",
        t.elapsed().as_secs_f64(),
        pool.rsa_len(),
        pool.p256_len()
    );

    let t = Instant::now();
    // Authentication on: istiod's act below uses its own ServiceAccount token.
    let stack = e2e::Stack::start_with(kube_sim::SimOptions::authenticating()).await?;
    println!(
        "[2/9] kube-sim at {} with the project's CRDs; mock TLSPC at {} (shipped seed) — {:.2} s",
        stack.sim.base_url(),
        stack.mock.base_url(),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let knobs = e2e::ControllerKnobs {
        certificate_signing_requests: true,
        // The signer also publishes its ClusterTrustBundle, which act 2's pod trusts.
        pod_certificates: Some(format!(
            "{}        clusterTrustBundle: true\n",
            support::pods::signer_config()
        )),
        ..e2e::ControllerKnobs::default()
    };
    let config_path = stack.write_config("demo", &knobs)?;
    let (bootstrap, controller) = stack.start_controller(&config_path, "demo").await?;
    // As `firefly run` does: the roots pods trust, as ClusterTrustBundles, while this replica leads.
    let config = firefly::config::Config::load(&config_path)?;
    let _trust_bundles = firefly::trust_bundle::publish::start_for(
        &config.controller.pod_certificates,
        stack.client.clone(),
        bootstrap.trust_anchors_der(),
        firefly::admin::ReadinessDetails::default(),
        controller.leadership(),
    );
    stack.create_issuer().await?;
    stack.wait_issuer_ready(PATIENCE).await?;
    println!(
        "[3/9] controller up: logged in to TLSPC, sub-CA key generated in locked memory (lock mode keyPages),\n      \
         sub-CA issued by the mock; Issuer istio-system/{} Ready — {:.2} s",
        e2e::ISSUER_NAME,
        t.elapsed().as_secs_f64()
    );

    let api = stack.requests();
    let tracker = e2e::ReadyTracker::start(api.clone()).await?;
    let writes_before = stack.sim.write_count("certificaterequests");
    let reads_before = stack.sim.request_count("get", "certificaterequests");
    println!(
        "[4/9] playing istio-csr ({IN_FLIGHT} in flight) and cert-manager's approver for {WORKLOADS} workloads…"
    );
    let start = Instant::now();
    let created = Arc::new(AtomicUsize::new(0));
    let driver = tokio::spawn(drive(api.clone(), csrs.clone(), created.clone()));
    let tty = std::io::stdout().is_terminal();
    let mut last_line: Option<Instant> = None;
    let every = if tty {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    tracker
        .wait_terminal(WORKLOADS, PATIENCE, |issued, failed| {
            if last_line.is_none_or(|t| t.elapsed() >= every) || issued + failed == WORKLOADS {
                last_line = Some(Instant::now());
                let line = format!(
                    "      created+approved {:>5}   issued {issued:>5} / {WORKLOADS}   failed {failed:>3}   {:.2} s",
                    created.load(Ordering::Relaxed),
                    start.elapsed().as_secs_f64()
                );
                if tty {
                    print!("\r{line}");
                } else {
                    println!("{line}");
                }
                let _ = std::io::stdout().flush();
            }
        })
        .await?;
    let approvals = driver.await.context("the istio-csr driver task")??;
    let wall = start.elapsed();
    if tty {
        println!();
    }
    let (issued, failed) = tracker.counts();
    if failed > 0 {
        let first = tracker.first_failure().unwrap_or_default();
        bail!("{failed} of {WORKLOADS} requests failed; first: {first}");
    }
    let mut latencies = Vec::with_capacity(WORKLOADS);
    for (name, approved_at) in &approvals {
        let t = tracker
            .get(name)
            .with_context(|| format!("{name} was never seen by the watch"))?;
        if t.certificates_seen != 1 {
            bail!(
                "{name} carried {} distinct certificates",
                t.certificates_seen
            );
        }
        let ready = t
            .issued_at
            .with_context(|| format!("{name} is not issued"))?;
        latencies.push(ready.saturating_duration_since(*approved_at));
    }
    let writes = stack.sim.write_count("certificaterequests") - writes_before;
    let reads = stack.sim.request_count("get", "certificaterequests") - reads_before;

    // One issued leaf, decoded and verified (read after the GET count above: the tracker keeps
    // only its name).
    let name = tracker
        .first_issued()
        .context("no issued request to show")?;
    let sample = api
        .get(&name)
        .await
        .with_context(|| format!("reading the issued request {name}"))?;
    let status = sample
        .status
        .clone()
        .context("issued request without status")?;
    let (chain_pem, root_pem) = e2e::issued_pems(&status)?;
    let identity = sample
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(firefly::crd::IDENTITIES_ANNOTATION))
        .cloned()
        .context("the sample has no identities annotation")?;
    let spki = csrs
        .iter()
        .find(|(id, ..)| *id == identity)
        .map(|(_, _, _, spki)| spki.clone())
        .context("the sample's identity is not one of the workloads")?;
    println!(
        "\n[5/9] one issued leaf: CertificateRequest istio-system/{}",
        sample.metadata.name.as_deref().unwrap_or("?")
    );
    print_leaf(&chain_pem)?;
    let report =
        e2e::verify_chain_in_process(&chain_pem, &root_pem, &identity, &spki, SystemTime::now())
            .context("in-process chain verification")?;
    println!("      chain (leaf → root):");
    for s in &report.subjects {
        println!(
            "        {}",
            if s.is_empty() {
                "(empty subject: the leaf)"
            } else {
                s
            }
        );
    }
    println!(
        "      in-process verification (x509-parser + aws-lc-rs): OK — every signature verifies up to status.ca,\n        \
         issuers are CAs, all valid now, leaf key = CSR key, single URI SAN {}",
        report.spiffe_id
    );
    print_openssl_verify(&chain_pem, &root_pem)?;

    istiod_act(&stack, &root_pem).await?;

    let summary = e2e::summarize(&mut latencies);
    println!(
        "\n[7/9] figures ({WORKLOADS} requests, controller + kube-sim + mock + driver in one process):"
    );
    println!(
        "      issued {issued} / {WORKLOADS} in {:.2} s (first create → last Ready): {:.0} requests/s",
        wall.as_secs_f64(),
        WORKLOADS as f64 / wall.as_secs_f64()
    );
    print_latencies(
        "approval → Ready latency",
        &summary,
        "burst of 1000 at once, so requests queue; from just before the approval PATCH to the watch event",
    );
    println!(
        "      CertificateRequest API calls: {writes} writes for {WORKLOADS} creates + {WORKLOADS} approvals + {WORKLOADS} issuances \
         → {:.2} controller writes per issued request; {reads} GETs",
        (writes as f64 - 2.0 * WORKLOADS as f64) / WORKLOADS as f64
    );

    pod_act(&stack, &root_pem).await?;

    controller.shutdown().await;
    drop(bootstrap);
    drop(tracker);
    println!(
        "\ndemo OK — both acts in {:.1} s (the budget is 90 s after the build)",
        demo_start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// istiod as registration authority (no istio-csr): one workload CSR through the Kubernetes CSR
/// API as istiod's ServiceAccount, approved by istiod itself, signed by the controller, decoded
/// and verified, then deleted.
async fn istiod_act(stack: &e2e::Stack, root_pem: &str) -> anyhow::Result<()> {
    use rcgen::PublicKeyData as _;
    use support::istiod;
    let t = Instant::now();
    stack.ready_mesh_cluster_issuer(PATIENCE).await?;
    let api = istiod::istiod_client(&stack.sim).await?;
    let key = support::csr::p256();
    let identity = "spiffe://cluster.local/ns/sandbox/sa/productpage";
    let request_pem = support::csr::RawCsr::istio(&key, identity).pem(&key);
    let request = istiod::csr(
        istiod::CLUSTER_SIGNER,
        &request_pem,
        &istiod::WORKLOAD_USAGES,
        Some(86400),
    );
    let signed = istiod::sign(&api, &request).await?;
    println!(
        "\n[6/9] istiod as registration authority (EXTERNAL_CA=ISTIOD_RA_KUBERNETES_API, no istio-csr): as {},\n      \
         CertificateSigningRequest {} for {} (signer {}), approved by istiod through /approval,\n      \
         certificate {} after the approval, CSR deleted — {:.2} s",
        signed.requester.as_deref().unwrap_or("?"),
        signed.name,
        identity,
        istiod::CLUSTER_SIGNER,
        e2e::ms(signed.latency),
        t.elapsed().as_secs_f64()
    );
    print_leaf(&signed.chain_pem)?;
    let report = e2e::verify_chain_in_process(
        &signed.chain_pem,
        root_pem,
        identity,
        &key.subject_public_key_info(),
        SystemTime::now(),
    )
    .context("in-process verification of istiod's certificate")?;
    println!(
        "      in-process verification: OK up to the same root, leaf key = CSR key, URI SAN {}",
        report.spiffe_id
    );
    print_openssl_verify(&signed.chain_pem, root_pem)?;
    Ok(())
}

/// Act 2: kubelets (kube-sim's, each as `system:node:<n>` with node credentials) request a pod
/// certificate for each of `PODS` pods exactly as the kubelet's `podCertificate` projected volume
/// does; the same controller signs them. One credential bundle is decoded and verified against
/// the signer's ClusterTrustBundle; then throughput and API calls.
async fn pod_act(stack: &e2e::Stack, root_pem: &str) -> anyhow::Result<()> {
    use futures::{StreamExt as _, TryStreamExt as _};
    use support::pods;
    println!(
        "\n— Act 2: pod certificates (Kubernetes 1.37 PodCertificateRequest, signer {}) —",
        pods::SIGNER
    );
    let t = Instant::now();
    pods::put_pods(&stack.sim, 0..PODS, NODES)?;
    let kubelets = pods::kubelets(&stack.sim, NODES).await?;
    let api: kube::Api<pods::PodCertificateRequest> =
        kube::Api::namespaced(stack.client.clone(), pods::NAMESPACE);
    let tracker = e2e::ReadyTracker::start(api).await?;
    let writes_before = stack.sim.write_count("podcertificaterequests");
    let reads_before = stack.sim.request_count("get", "podcertificaterequests");
    println!(
        "[8/9] {PODS} pods in namespace {} on {NODES} nodes, each projecting a P-256 podCertificate — {:.2} s;\n      \
         their kubelets ({IN_FLIGHT} requests in flight) generate each pod's key and create its PodCertificateRequest…",
        pods::NAMESPACE,
        t.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let requested: Vec<pods::Requested> = futures::stream::iter((0..PODS).map(|i| {
        let kubelet = &kubelets[i % NODES];
        async move { pods::request(kubelet, i).await }
    }))
    .buffer_unordered(IN_FLIGHT)
    .try_collect()
    .await?;
    tracker.wait_terminal(PODS, PATIENCE, |_, _| {}).await?;
    let wall = start.elapsed();
    let (issued, failed) = tracker.counts();
    if failed > 0 {
        let first = tracker.first_failure().unwrap_or_default();
        bail!("{failed} of {PODS} pod certificates were refused; first: {first}");
    }
    let mut latencies = Vec::with_capacity(PODS);
    for r in &requested {
        let t = tracker
            .get(&r.name)
            .with_context(|| format!("{} was never seen by the watch", r.name))?;
        let done = t
            .issued_at
            .with_context(|| format!("{} is not issued", r.name))?;
        latencies.push(done.saturating_duration_since(r.created));
    }
    let writes = stack.sim.write_count("podcertificaterequests") - writes_before;
    let reads = stack.sim.request_count("get", "podcertificaterequests") - reads_before;

    // One credential bundle, as the kubelet projects it into the pod, decoded and verified.
    let sample = requested.first().context("no pod certificate to show")?;
    let i = sample.pod;
    let stored = stack
        .sim
        .object(
            "certificates.k8s.io",
            "podcertificaterequests",
            pods::NAMESPACE,
            &sample.name,
        )
        .context("the sample request is gone")?;
    let status = &stored["status"];
    let chain_pem = status["certificateChain"]
        .as_str()
        .context("the sample has no certificateChain")?;
    let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", sample.key_pkcs8.clone()));
    let bundle = format!("{key_pem}{chain_pem}");
    let blocks = pem::parse_many(&bundle).context("the credential bundle is not PEM")?;
    println!(
        "\n[9/9] one credential bundle: pod {}/pod-{i} (node {}), PodCertificateRequest {}",
        pods::NAMESPACE,
        pods::node_of(i, NODES),
        sample.name
    );
    println!(
        "      credentialbundle.pem: {} ({} bytes)",
        blocks
            .iter()
            .map(|b| b.tag().to_owned())
            .collect::<Vec<_>>()
            .join(", "),
        bundle.len()
    );
    println!(
        "      status       notBefore {}  beginRefreshAt {}  notAfter {}",
        status["notBefore"].as_str().unwrap_or("?"),
        status["beginRefreshAt"].as_str().unwrap_or("?"),
        status["notAfter"].as_str().unwrap_or("?")
    );
    print_leaf(chain_pem)?;
    let key = rcgen::KeyPair::try_from(sample.key_pkcs8.as_slice())
        .context("the pod's key does not parse")?;
    let identity = pods::spiffe_id(i);
    // What the pod trusts: the signer's ClusterTrustBundle, as a `clusterTrustBundle` projection
    // (by signerName and the label) gives it, not the root act 1 read from the request.
    let (bundle_name, anchors_pem) = trust_bundle_of(stack, pods::SIGNER).await?;
    let anchors = pem::parse_many(&anchors_pem).context("the ClusterTrustBundle is not PEM")?;
    println!(
        "      ClusterTrustBundle {bundle_name} (signer {}, label {}={}): {} trust anchor(s){}",
        pods::SIGNER,
        firefly::trust_bundle::LABEL_KEY,
        firefly::trust_bundle::LABEL_VALUE,
        anchors.len(),
        if anchors_pem.trim() == root_pem.trim() {
            ", the root of act 1"
        } else {
            ""
        }
    );
    let report = e2e::verify_chain_in_process(
        chain_pem,
        &anchors_pem,
        &identity,
        &rcgen::PublicKeyData::subject_public_key_info(&key),
        SystemTime::now(),
    )
    .context("in-process verification of the pod certificate against the ClusterTrustBundle")?;
    println!(
        "      in-process verification: OK up to the ClusterTrustBundle's anchor, leaf key = the pod's key, URI SAN {}",
        report.spiffe_id
    );
    print_openssl_verify(chain_pem, &anchors_pem)?;
    let summary = e2e::summarize(&mut latencies);
    println!(
        "      issued {issued} / {PODS} in {:.2} s (first kubelet request → last Issued): {:.0} pod certificates/s",
        wall.as_secs_f64(),
        PODS as f64 / wall.as_secs_f64()
    );
    print_latencies(
        "creation → Issued",
        &summary,
        &format!(
            "{IN_FLIGHT} kubelet requests at once; from the create's answer to the watch event"
        ),
    );
    println!(
        "      PodCertificateRequest API calls: {writes} writes for {PODS} creates + {PODS} answers → {:.2} controller writes per request; {reads} GETs",
        (writes as f64 - PODS as f64) / PODS as f64
    );
    Ok(())
}

/// The name and PEM of the ClusterTrustBundle the controller publishes for `signer`, once it
/// exists; checked as a pod's projection selects it (`spec.signerName`, the root label).
async fn trust_bundle_of(stack: &e2e::Stack, signer: &str) -> anyhow::Result<(String, String)> {
    let name = firefly::trust_bundle::bundle_name(signer);
    let group = "certificates.k8s.io";
    kube_sim::wait_for(PATIENCE, || async {
        stack
            .sim
            .object(group, "clustertrustbundles", "", &name)
            .is_some()
    })
    .await
    .with_context(|| format!("the controller did not publish the ClusterTrustBundle {name}"))?;
    let bundle = stack
        .sim
        .object(group, "clustertrustbundles", "", &name)
        .with_context(|| format!("the ClusterTrustBundle {name} is gone"))?;
    let label = &bundle["metadata"]["labels"][firefly::trust_bundle::LABEL_KEY];
    if bundle["spec"]["signerName"] != signer || label != firefly::trust_bundle::LABEL_VALUE {
        bail!(
            "the ClusterTrustBundle {name} would not be selected by signer {signer} and its label: {bundle:#}"
        );
    }
    let pem = bundle["spec"]["trustBundle"]
        .as_str()
        .with_context(|| format!("the ClusterTrustBundle {name} has no spec.trustBundle"))?;
    Ok((name, pem.to_owned()))
}

/// Creates and approves every request with `IN_FLIGHT` at once, counting them in `created`;
/// returns (name, instant just before its approval).
async fn drive(
    api: kube::Api<firefly::crd::CertificateRequest>,
    csrs: Arc<Vec<e2e::WorkloadCsr>>,
    created: Arc<AtomicUsize>,
) -> anyhow::Result<Vec<(String, Instant)>> {
    use futures::{StreamExt as _, TryStreamExt as _};
    // Owned requests, so the spawned stream borrows nothing.
    let requests: Vec<_> = csrs
        .iter()
        .map(|(id, _, pem_text, _)| e2e::istio_csr_request(pem_text, id, e2e::ISSUER_NAME))
        .collect();
    futures::stream::iter(requests.into_iter().map(move |cr| {
        let api = api.clone();
        let created = created.clone();
        async move {
            let out = e2e::create_and_approve(&api, &cr).await?;
            created.fetch_add(1, Ordering::Relaxed);
            anyhow::Ok(out)
        }
    }))
    .buffer_unordered(IN_FLIGHT)
    .try_collect()
    .await
}

/// One line of latency figures.
fn print_latencies(what: &str, s: &e2e::LatencySummary, note: &str) {
    println!(
        "      {what}: p50 {}  p90 {}  p99 {}  max {}  ({note})",
        e2e::ms(s.p50),
        e2e::ms(s.p90),
        e2e::ms(s.p99),
        e2e::ms(s.max)
    );
}

/// `openssl verify -x509_strict -purpose sslclient` of the chain against the root, printed.
/// Without openssl on PATH the check is skipped with a note, except under CI (`CI=true`, as
/// `.ci/run` and CI services set it), where a skipped independent check is a failure.
fn print_openssl_verify(chain_pem: &str, root_pem: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    match e2e::openssl_verify(chain_pem, root_pem, dir.path())? {
        Some(out) => println!("      openssl verify -x509_strict -purpose sslclient: {out}"),
        None if under_ci() => bail!(
            "openssl is not on PATH and CI is set: the independent check may not be skipped \
             in CI (install openssl)"
        ),
        None => println!("      openssl not found on PATH: independent check skipped"),
    }
    Ok(())
}

/// Whether the demo runs under CI: `CI` set to `true` or `1` (any case).
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Prints the leaf's fields the way a person checks an SVID.
fn print_leaf(chain_pem: &str) -> anyhow::Result<()> {
    use x509_parser::prelude::*;
    let ders = e2e::pem_certificates(chain_pem)?;
    let leaf_der = ders.first().context("empty chain")?;
    let (_, leaf) = X509Certificate::from_der(leaf_der)
        .map_err(|e| anyhow::anyhow!("the leaf does not parse: {e}"))?;
    let subject = leaf.subject().to_string();
    println!(
        "      subject      {}",
        if subject.is_empty() {
            "(empty)"
        } else {
            &subject
        }
    );
    println!("      issuer       {}", leaf.issuer());
    println!("      serial       {}", leaf.raw_serial_as_string());
    println!(
        "      validity     {} → {}",
        leaf.validity().not_before,
        leaf.validity().not_after
    );
    let key = match leaf.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => format!("RSA-{}", k.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(p)) => format!("EC ({} bit point)", p.key_size()),
        Ok(_) => "other".to_owned(),
        Err(e) => format!("unparsed ({e})"),
    };
    println!("      public key   {key}");
    println!(
        "      signature    {}",
        oid_name(&leaf.signature_algorithm.algorithm)
    );
    for ext in leaf.extensions() {
        let critical = if ext.critical { " (critical)" } else { "" };
        let text = match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => format!(
                "subjectAltName{critical}: {}",
                san.general_names
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ParsedExtension::KeyUsage(ku) => format!("keyUsage{critical}: {ku}"),
            ParsedExtension::ExtendedKeyUsage(eku) => format!(
                "extendedKeyUsage{critical}: {}{}",
                if eku.server_auth { "serverAuth " } else { "" },
                if eku.client_auth { "clientAuth" } else { "" }
            ),
            ParsedExtension::BasicConstraints(bc) => {
                format!("basicConstraints{critical}: CA:{}", bc.ca)
            }
            ParsedExtension::SubjectKeyIdentifier(k) => format!("subjectKeyIdentifier: {k:x}"),
            ParsedExtension::AuthorityKeyIdentifier(a) => format!(
                "authorityKeyIdentifier: {}",
                a.key_identifier
                    .as_ref()
                    .map(|k| format!("{k:x}"))
                    .unwrap_or_default()
            ),
            _ => format!("{}{critical}", ext.oid),
        };
        println!("      {text}");
    }
    Ok(())
}

fn oid_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
        .map(str::to_owned)
        .unwrap_or_else(|_| oid.to_id_string())
}
