//! The PodCertificateRequest front door end to end (issue 15): kube-sim per Kubernetes release
//! with authentication, NodeRestriction and the test kubelet (`system:node:<n>`), the mock TLSPC
//! with pod-certificate policies, the real controller, and openssl and Python `cryptography` as
//! judges of every issued chain.

use std::time::Duration;

use base64::Engine as _;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube_sim::kubelet::{KeyType, Kubelet, Outcome, PodCertificate};
use kube_sim::{KubeSim, Release};
use serde_json::{Value, json};
use support::controller::*;
use support::verifiers;

const PODS: &str = "firefly.venafi.com/pods";
const RSA2048: &str = "firefly.venafi.com/rsa2048";
const SHORT: &str = "firefly.venafi.com/short";
const VERIFIED: &str = "firefly.venafi.com/verified";
const UNSERVED: &str = "example.com/unserved";
const WAIT: Duration = Duration::from_secs(20);

/// The shipped seed plus the pod-certificate policies: `pods-24h` (the kubelet's key types but
/// P-521, 24 h), `pods-rsa2048` (RSA_2048 only, which no kubelet generates) and `pods-30m`.
fn seed() -> String {
    let policy = |name: &str, validity: &str, keys: &str| {
        let default = keys.split(',').next().unwrap_or(keys).trim();
        format!(
            r#"  - name: {name}
    validityPeriod: {validity}
    subject:
      commonName: {{type: FORBIDDEN}}
      organization: {{type: IGNORED}}
      organizationalUnit: {{type: IGNORED}}
      locality: {{type: IGNORED}}
      stateOrProvince: {{type: IGNORED}}
      country: {{type: IGNORED}}
    sans:
      uniformResourceIdentifiers:
        type: REQUIRED
        allowedValues: ['^spiffe://cluster\.local/ns/.*/sa/.*']
        minOccurrences: 1
        maxOccurrences: 1
      dnsNames: {{type: FORBIDDEN}}
      ipAddresses: {{type: FORBIDDEN}}
      rfc822Names: {{type: FORBIDDEN}}
    keyUsages: [digitalSignature, keyEncipherment]
    extendedKeyUsages: [SERVER_AUTH, CLIENT_AUTH]
    keyAlgorithm:
      allowedValues: [{keys}]
      defaultValue: {default}
"#
        )
    };
    let extra = [
        policy(
            "pods-24h",
            "P1D",
            "EC_P256, EC_P384, EC_ED25519, RSA_3072, RSA_4096",
        ),
        policy("pods-rsa2048", "P1D", "RSA_2048"),
        policy("pods-30m", "PT30M", "EC_P256"),
    ]
    .concat();
    let seed = SHIPPED_SEED.replace(
        "\nconfigurations:\n",
        &format!("\n{extra}\nconfigurations:\n"),
    );
    assert!(seed.contains("pods-30m"), "the seed gained the policies");
    seed.replace(
        "policies: [istio-mtls]",
        "policies: [istio-mtls, pods-24h, pods-rsa2048, pods-30m]",
    )
}

fn signers() -> String {
    let signer = |name: &str, policy: &str, namespaces: &str, verify: bool| {
        format!(
            "      - signerName: {name}\n        policyName: {policy}\n        trustDomain: cluster.local\n        namespaces: {namespaces}\n        verifyPod: {verify}\n"
        )
    };
    format!(
        "    enabled: true\n    signers:\n{}{}{}{}",
        signer(PODS, "pods-24h", "[sandbox, team-a]", false),
        signer(RSA2048, "pods-rsa2048", "[\"*\"]", false),
        signer(SHORT, "pods-30m", "[\"*\"]", false),
        signer(VERIFIED, "pods-24h", "[\"*\"]", true),
    )
}

async fn env(release: Release, v1beta1: bool) -> Env {
    Env::start_with(Options {
        authenticate: true,
        pod_certificates: Some(signers()),
        seed: Some(seed()),
        kubernetes_release: Some(release),
        certificates_v1beta1: v1beta1,
        ..Options::default()
    })
    .await
}

/// Pod `ns/name` on `node` as ServiceAccount `sa`, projecting a certificate of every signer the
/// tests use (1.37's NodeRestriction lets a node ask only for signers its pods name).
fn pod(sim: &KubeSim, ns: &str, name: &str, node: &str, sa: &str) -> Value {
    if sim.object("", "serviceaccounts", ns, sa).is_none() {
        sim.put_object(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}}))
            .unwrap();
    }
    let sources: Vec<Value> = [PODS, RSA2048, SHORT, VERIFIED, UNSERVED]
        .iter()
        .map(|s| json!({"podCertificate": {"signerName": s, "keyType": "ECDSAP256", "credentialBundlePath": format!("{}.pem", s.replace('/', "_"))}}))
        .collect();
    sim.put_object(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": {
        "nodeName": node, "serviceAccountName": sa,
        "containers": [{"name": "c", "image": "x"}],
        "volumes": [{"name": "certs", "projected": {"sources": sources}}]}}))
    .unwrap()
}

fn source(signer: &str, key: KeyType, max: Option<i32>) -> PodCertificate {
    let mut pc = PodCertificate::new(signer, key);
    pc.max_expiration_seconds = max;
    pc
}

/// The kubelet's request for `ns/pod`, waited for until answered.
async fn ask(kubelet: &Kubelet, ns: &str, pod: &str, pc: &PodCertificate) -> Outcome {
    kubelet
        .request(ns, pod, pc, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{ns}/{pod} for {}: {e:#}", pc.signer_name))
}

/// `controller.podCertificates` of [`signers`], parsed as `firefly run` would.
fn door_config() -> firefly::config::PodCertificatesConfig {
    let yaml = format!(
        "bootstrap:\n  vaas:\n    url: https://x.example\n    auth:\n      clientID: c\n      privateKeyFile: k\ncontroller:\n  podCertificates:\n{}",
        signers()
    );
    firefly::config::Config::from_yaml_str(&yaml)
        .unwrap()
        .controller
        .pod_certificates
}

fn denied(outcome: &Outcome) -> (&str, &str) {
    match outcome {
        Outcome::Denied {
            reason, message, ..
        } => (reason, message),
        other => panic!("expected Denied, got {other:?}"),
    }
}

/// An issued answer as the kubelet projects it: the chain (headers dropped), the stored request
/// and the pod's PKCS#8 key.
struct Delivered<'a> {
    chain: String,
    request: &'a Value,
    key_pem: &'a str,
}

fn issued(outcome: &Outcome) -> Delivered<'_> {
    match outcome {
        Outcome::Issued {
            request,
            credential_bundle,
            key_pem,
        } => {
            // The bundle is the PKCS#8 key, then the chain.
            let start = credential_bundle
                .find("-----BEGIN CERTIFICATE-----")
                .expect("the bundle carries certificates");
            assert!(credential_bundle[..start].contains("PRIVATE KEY"));
            Delivered {
                chain: credential_bundle[start..].to_owned(),
                request,
                key_pem,
            }
        }
        other => panic!("expected Issued, got {other:?}"),
    }
}

fn unix(t: x509_parser::time::ASN1Time) -> i64 {
    t.timestamp()
}

fn seconds(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{rfc3339:?}: {e}"))
        .as_second()
}

fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Judges an issued chain: leaf + sub-CA (+ intermediates), never the root; openssl (client and
/// server purpose) and cryptography verify it to the root, pkilint finds nothing, py-spiffe
/// parses it as the X509-SVID of `spiffe` for the pod's key; the leaf carries exactly `spiffe`;
/// the status times are the leaf's; the lifetime is `lifetime` and beginRefreshAt is inside
/// [NotBefore + 10 min, NotAfter − 10 min]. Returns the leaf's NotBefore.
fn judge(env: &Env, delivered: &Delivered<'_>, spiffe: &str, lifetime: i64) -> i64 {
    let (chain, request) = (delivered.chain.as_str(), delivered.request);
    let root = env.root_pem();
    let blocks = verifiers::split_pem(chain);
    assert!(blocks.len() >= 2, "leaf and sub-CA: {chain}");
    assert!(
        !blocks.iter().any(|b| b.trim() == root.trim()),
        "the chain stops before the trust anchor"
    );
    for purpose in ["sslclient", "sslserver"] {
        let v = openssl_verify(chain, &root, purpose);
        assert!(v.ok, "openssl {purpose}: {}", v.output);
    }
    let v = verifiers::python_verify(chain, &root, spiffe);
    assert!(v.ok, "cryptography: {}", v.output);
    let v = verifiers::pkilint_verify(chain, &root);
    assert!(v.ok, "pkilint: {}", v.output);
    let v = verifiers::spiffe_verify(chain, delivered.key_pem, spiffe);
    assert!(v.ok, "py-spiffe: {}", v.output);
    let der = pem::parse(blocks[0].as_bytes()).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(der.contents()).unwrap();
    let uris: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| format!("{n}"))
        .collect();
    assert_eq!(
        uris,
        [format!("URI({spiffe})")],
        "the identity and nothing else"
    );
    let nb = unix(leaf.validity().not_before);
    let na = unix(leaf.validity().not_after);
    assert_eq!(na - nb, lifetime, "NotAfter − NotBefore");
    // Back-dated 10 s from the signing (less only if the sub-CA is younger), which happened
    // between the request's creation and the Issued write: never forward-dated, never
    // back-dated further.
    let created = seconds(request["metadata"]["creationTimestamp"].as_str().unwrap());
    let answered = seconds(
        request["status"]["conditions"][0]["lastTransitionTime"]
            .as_str()
            .unwrap(),
    );
    assert!(
        created - 10 <= nb && nb <= answered,
        "back-dated 10 s: created={created} nb={nb} answered={answered}"
    );
    let status = &request["status"];
    assert_eq!(status["notBefore"], rfc3339(nb));
    assert_eq!(status["notAfter"], rfc3339(na));
    let refresh = seconds(status["beginRefreshAt"].as_str().unwrap());
    assert!(
        refresh >= nb + 600 && refresh <= na - 600,
        "beginRefreshAt {refresh} in [{nb}+10m, {na}-10m]"
    );
    assert_eq!(refresh, nb + (na - nb) * 2 / 3, "two thirds in");
    nb
}

/// Waits for a Warning event `reason` about `ns/name`.
async fn warning_event(env: &Env, ns: &str, name: &str, reason: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = env.events_for(ns, name).await;
        if events
            .iter()
            .any(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning"))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Warning event {reason}: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status_writes(env: &Env) -> u64 {
    env.sim
        .request_count("patch", "podcertificaterequests/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubelet_requests_on_1_37_are_issued_or_denied_with_the_contract_reasons() {
    let env = env(Release::V1_37, false).await;
    let sim = &env.sim;
    pod(sim, "sandbox", "web-0", "node-1", "web");
    pod(sim, "other", "web-0", "node-1", "web");
    let kubelet = sim.kubelet("node-1").await.unwrap();

    // ECDSAP256 with maxExpirationSeconds 3600 under a 24 h policy: exactly 3600 s.
    let out = ask(
        &kubelet,
        "sandbox",
        "web-0",
        &source(PODS, KeyType::EcdsaP256, Some(3600)),
    )
    .await;
    let delivered = issued(&out);
    judge(
        &env,
        &delivered,
        "spiffe://cluster.local/ns/sandbox/sa/web",
        3600,
    );

    // The other served key types, and the maximum maxExpirationSeconds (the policy's 24 h wins).
    for key in [
        KeyType::EcdsaP384,
        KeyType::Ed25519,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
    ] {
        let out = ask(
            &kubelet,
            "sandbox",
            "web-0",
            &source(PODS, key, Some(7_862_400)),
        )
        .await;
        let delivered = issued(&out);
        judge(
            &env,
            &delivered,
            "spiffe://cluster.local/ns/sandbox/sa/web",
            86_400,
        );
    }

    // P-521: never served, even though the API accepts it.
    let out = ask(
        &kubelet,
        "sandbox",
        "web-0",
        &source(PODS, KeyType::EcdsaP521, None),
    )
    .await;
    let (reason, message) = denied(&out);
    assert_eq!(reason, "UnsupportedKeyType", "{message}");
    assert!(
        message.contains("ECDSAP256, ECDSAP384, ED25519, RSA3072, RSA4096"),
        "{message}"
    );

    // A policy of RSA_2048 only: RSA3072 is an unsupported key type, not a policy denial.
    let out = ask(
        &kubelet,
        "sandbox",
        "web-0",
        &source(RSA2048, KeyType::Rsa3072, None),
    )
    .await;
    let (reason, message) = denied(&out);
    assert_eq!(reason, "UnsupportedKeyType", "{message}");
    assert!(message.contains("RSA3072"), "{message}");

    // A policy under one hour.
    let out = ask(
        &kubelet,
        "sandbox",
        "web-0",
        &source(SHORT, KeyType::EcdsaP256, None),
    )
    .await;
    assert_eq!(denied(&out).0, "LifetimeBelowMinimum");

    // An unknown user annotation.
    let mut annotated = source(PODS, KeyType::EcdsaP256, None);
    annotated
        .user_annotations
        .insert("example.com/flavour".into(), "x".into());
    let out = ask(&kubelet, "sandbox", "web-0", &annotated).await;
    let (reason, message) = denied(&out);
    assert_eq!(reason, "InvalidUnverifiedUserAnnotations");
    assert!(message.contains("example.com/flavour"), "{message}");

    // A namespace outside the signer's list; the refusal has its Warning event.
    let out = ask(
        &kubelet,
        "other",
        "web-0",
        &source(PODS, KeyType::EcdsaP256, None),
    )
    .await;
    let (reason, message) = denied(&out);
    assert_eq!(reason, "NamespaceNotAllowed");
    assert!(message.contains("\"other\""), "{message}");
    let Outcome::Denied { request, .. } = &out else {
        unreachable!()
    };
    let name = request["metadata"]["name"].as_str().unwrap();
    warning_event(&env, "other", name, "NamespaceNotAllowed").await;

    // verifyPod: the kubelet's request matches the pod cache.
    let out = ask(
        &kubelet,
        "sandbox",
        "web-0",
        &source(VERIFIED, KeyType::EcdsaP256, None),
    )
    .await;
    issued(&out);

    // A signer we do not serve: untouched.
    let (unserved, _) = kubelet
        .create_request(
            "sandbox",
            "web-0",
            &source(UNSERVED, KeyType::EcdsaP256, None),
        )
        .await
        .unwrap();

    // Every answer above was one write, and the terminal requests were never written again:
    // counted once a barrier through each served signer's watch and queue (a later request of
    // that signer, answered) has been answered.
    let answered = 11;
    let barriers = [
        (PODS, KeyType::EcdsaP256),
        (RSA2048, KeyType::Rsa3072),
        (SHORT, KeyType::EcdsaP256),
        (VERIFIED, KeyType::EcdsaP256),
    ];
    for (signer, key) in barriers {
        ask(&kubelet, "sandbox", "web-0", &source(signer, key, None)).await;
    }
    assert_eq!(
        status_writes(&env),
        answered + barriers.len() as u64,
        "one status write per request"
    );
    let name = unserved["metadata"]["name"].as_str().unwrap();
    let stored = sim
        .object(
            "certificates.k8s.io",
            "podcertificaterequests",
            "sandbox",
            name,
        )
        .unwrap();
    assert!(
        stored
            .get("status")
            .is_none_or(|s| s.get("conditions").is_none()),
        "{stored}"
    );

    // The barriers included: two more issued, one more UnsupportedKeyType.
    let controller_metrics = env.controller.as_ref().unwrap().metrics().clone();
    // An outcome is counted once its write is accepted, which can be just after the kubelet sees it.
    let _ = kube_sim::wait_for(PATIENCE, || async {
        counter(&controller_metrics, ISSUED) >= 8
    })
    .await;
    let metrics = controller_metrics.render().unwrap();
    for line in [
        "firefly_issuance_outcomes_total{front_door=\"PodCertificateRequest\",outcome=\"Issued\"} 8",
        "firefly_issuance_outcomes_total{front_door=\"PodCertificateRequest\",outcome=\"UnsupportedKeyType\"} 3",
        "firefly_signer_sign{success=\"true\",type=\"PodCertificateRequest\"} 8",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

fn pcr_api(client: kube::Client, ns: &str, version: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client,
        ns,
        &ApiResource {
            group: "certificates.k8s.io".into(),
            version: version.into(),
            api_version: format!("certificates.k8s.io/{version}"),
            kind: "PodCertificateRequest".into(),
            plural: "podcertificaterequests".into(),
        },
    )
}

/// A request made by a user who is not a node (the admin), naming `sa` for pod `ns/pod`.
async fn forged(env: &Env, signer: &str, ns: &str, pod: &Value, sa: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let stub = params.serialize_request(&key).unwrap().der().to_vec();
    let body: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
        "metadata": {"generateName": "forged-", "namespace": ns},
        "spec": {
            "signerName": signer, "podName": pod["metadata"]["name"], "podUID": pod["metadata"]["uid"],
            "serviceAccountName": sa, "serviceAccountUID": "0000", "nodeName": "node-1", "nodeUID": "0000",
            "maxExpirationSeconds": 3600,
            "stubPKCS10Request": base64::engine::general_purpose::STANDARD.encode(stub),
        }
    }))
    .unwrap();
    let created = pcr_api(env.client.clone(), ns, "v1")
        .create(&PostParams::default(), &body)
        .await
        .expect("the admin may create requests");
    created.metadata.name.unwrap()
}

async fn terminal(env: &Env, ns: &str, name: &str) -> (String, String, Value) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let obj = env
            .sim
            .object("certificates.k8s.io", "podcertificaterequests", ns, name)
            .expect("the request exists");
        if let Some(c) = obj["status"]["conditions"]
            .as_array()
            .and_then(|c| c.first())
        {
            let t = c["type"].as_str().unwrap_or("").to_owned();
            let r = c["reason"].as_str().unwrap_or("").to_owned();
            return (t, r, obj);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no terminal condition: {obj}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_non_node_creator_is_caught_by_verify_pod_and_trusted_without_it() {
    let env = env(Release::V1_37, false).await;
    let web = pod(&env.sim, "sandbox", "web-0", "node-1", "web");
    // The pod runs as "web"; the forger claims "admin".
    let name = forged(&env, VERIFIED, "sandbox", &web, "admin").await;
    let (t, reason, obj) = terminal(&env, "sandbox", &name).await;
    assert_eq!(
        (t.as_str(), reason.as_str()),
        ("Denied", "PolicyDenied"),
        "{obj}"
    );
    let message = obj["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(message.contains("spec.serviceAccountName"), "{message}");
    // Without verifyPod the signer trusts the request (DESIGN §8: keep `create` for nodes).
    let name = forged(&env, PODS, "sandbox", &web, "admin").await;
    let (t, _, obj) = terminal(&env, "sandbox", &name).await;
    assert_eq!(t, "Issued", "{obj}");
    let chain = obj["status"]["certificateChain"].as_str().unwrap();
    let v = verifiers::python_verify(
        chain,
        &env.root_pem(),
        "spiffe://cluster.local/ns/sandbox/sa/admin",
    );
    assert!(v.ok, "{}", v.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn releases_1_35_and_1_36_are_served_through_v1beta1() {
    for release in [Release::V1_35, Release::V1_36] {
        let env = env(release, true).await;
        pod(&env.sim, "team-a", "api-0", "node-1", "api");
        let kubelet = env.sim.kubelet("node-1").await.unwrap();
        let out = ask(
            &kubelet,
            "team-a",
            "api-0",
            &source(PODS, KeyType::EcdsaP256, Some(3600)),
        )
        .await;
        let delivered = issued(&out);
        let request = delivered.request;
        let v1beta1 = request["apiVersion"] == "certificates.k8s.io/v1beta1";
        assert!(v1beta1, "{release:?}: {request}");
        let stub = request["spec"]["stubPKCS10Request"].as_str().unwrap_or("");
        let pkix = request["spec"]["pkixPublicKey"].as_str().unwrap_or("");
        match release {
            Release::V1_35 => assert!(stub.is_empty() && !pkix.is_empty(), "pkix + PoP"),
            _ => assert!(!stub.is_empty(), "stub"),
        }
        judge(
            &env,
            &delivered,
            "spiffe://cluster.local/ns/team-a/sa/api",
            3600,
        );
    }
}

fn counter(metrics: &firefly::metrics::Metrics, line_start: &str) -> u64 {
    let text = metrics.render().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

const ISSUED: &str =
    "firefly_issuance_outcomes_total{front_door=\"PodCertificateRequest\",outcome=\"Issued\"}";
const NOT_DELIVERED: &str = "firefly_signed_not_delivered_total{type=\"PodCertificateRequest\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletion_mid_flight_two_replicas_and_a_tlspc_outage() {
    let env = Env::start_with(Options {
        authenticate: true,
        pod_certificates: Some(signers()),
        seed: Some(seed()),
        policy_refresh_interval: "1s",
        policy_max_staleness: "3s",
        ..Options::default()
    })
    .await;
    let sim = &env.sim;
    pod(sim, "sandbox", "web-0", "node-1", "web");
    let kubelet = sim.kubelet("node-1").await.unwrap();
    let a = env.controller.as_ref().unwrap().metrics().clone();

    // Deleted while its answer is on the way: signed, never delivered, audited as such.
    sim.faults().inject(
        kube_sim::FaultRule::latency(Duration::from_secs(3))
            .verb("patch")
            .resource("podcertificaterequests/status")
            .times(1),
    );
    let (created, _) = kubelet
        .create_request("sandbox", "web-0", &source(PODS, KeyType::EcdsaP256, None))
        .await
        .unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_owned();
    // Signed: its answer is now held up on the way to the API server.
    let signed = "firefly_signer_sign{success=\"true\",type=\"PodCertificateRequest\"}";
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(&a, signed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never signed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pcr_api(env.client.clone(), "sandbox", "v1")
        .delete(&name, &Default::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(&a, NOT_DELIVERED) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never audited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        counter(&a, ISSUED),
        0,
        "a deleted request is not counted as issued"
    );

    // Two active replicas (no leader election): every request is answered once.
    let (_boot_b, b) = env.start_replica("replica-b").await;
    let pc = source(PODS, KeyType::EcdsaP256, None);
    let requests = (0..6).map(|_| kubelet.request("sandbox", "web-0", &pc, WAIT));
    for out in futures::future::join_all(requests).await {
        issued(&out.unwrap());
    }
    // Counted once a barrier (a later request through the same watch, answered) is in and the
    // second replica has stopped (its reconciles in flight finish first).
    issued(&ask(&kubelet, "sandbox", "web-0", &pc).await);
    let b_metrics = b.metrics().clone();
    b.shutdown().await;
    let delivered = || counter(&a, ISSUED) + counter(&b_metrics, ISSUED);
    // An answer is counted once its write is accepted, just after the kubelet may see it.
    let _ = kube_sim::wait_for(PATIENCE, || async { delivered() >= 7 }).await;
    assert_eq!(
        delivered(),
        7,
        "one delivered answer per request across both replicas (the barrier's included)"
    );

    // TLSPC down: signing goes on from the in-memory sub-CA until the policies are older than
    // policyMaxStaleness; then requests wait (Warning event, retry metric, no write) and are
    // issued once TLSPC is back.
    use firefly::tlspc_mock::{ErrorBody, Faults, Route, RouteError};
    let outage = Faults {
        route_errors: [Route::Token, Route::Configurations]
            .into_iter()
            .map(|route| RouteError {
                route,
                status: 503,
                count: None,
                probability: None,
                body: ErrorBody::Html,
            })
            .collect(),
        ..Default::default()
    };
    env.mock.set_faults(outage).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !env.authority.ready().message.contains("policyMaxStaleness") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "policies never went stale"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (created, _) = kubelet
        .create_request("sandbox", "web-0", &source(PODS, KeyType::EcdsaP256, None))
        .await
        .unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_owned();
    let retries = "firefly_issuance_retries_total{front_door=\"PodCertificateRequest\",reason=\"PolicyUnavailable\"}";
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(&a, retries) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no retry counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = stored_pcr(sim, "sandbox", &name).unwrap();
    assert!(
        stored["status"]["conditions"].is_null(),
        "no answer while waiting: {stored}"
    );
    warning_event(&env, "sandbox", &name, "PolicyUnavailable").await;
    env.mock.set_faults(Faults::default()).unwrap();
    let (t, _, obj) = terminal(&env, "sandbox", &name).await;
    assert_eq!(t, "Issued", "{obj}");
}

/// A 1.35 kubelet's request through v1beta1: `pkixPublicKey` and an ECDSA proof of possession
/// over the pod UID, no stub.
async fn legacy_request(env: &Env, ns: &str, pod: &Value) -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap();
    let pop = key.sign(&rng, pod_uid.as_bytes()).unwrap();
    let spki = rcgen::KeyPair::try_from(key.to_pkcs8v1().unwrap().as_ref())
        .map(|k| rcgen::PublicKeyData::subject_public_key_info(&k))
        .unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let body: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1beta1", "kind": "PodCertificateRequest",
        "metadata": {"generateName": "legacy-", "namespace": ns},
        "spec": {
            "signerName": PODS, "podName": pod["metadata"]["name"], "podUID": pod_uid,
            "serviceAccountName": pod["spec"]["serviceAccountName"], "serviceAccountUID": "0000",
            "nodeName": "node-1", "nodeUID": "0000", "maxExpirationSeconds": 3600,
            "pkixPublicKey": b64(&spki), "proofOfPossession": b64(pop.as_ref()),
        }
    }))
    .unwrap();
    let created = pcr_api(env.client.clone(), ns, "v1beta1")
        .create(&PostParams::default(), &body)
        .await
        .expect("a v1beta1 request with pkixPublicKey");
    created.metadata.name.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_both_versions_served_each_request_is_answered_once_through_its_view() {
    let env = env(Release::V1_37, true).await;
    let lists = || env.sim.request_count("list", "podcertificaterequests");
    let web = pod(&env.sim, "sandbox", "web-0", "node-1", "web");
    let kubelet = env.sim.kubelet("node-1").await.unwrap();
    let out = ask(
        &kubelet,
        "sandbox",
        "web-0",
        &source(PODS, KeyType::EcdsaP256, Some(3600)),
    )
    .await;
    let delivered = issued(&out);
    judge(
        &env,
        &delivered,
        "spiffe://cluster.local/ns/sandbox/sa/web",
        3600,
    );
    // v1 only, one watch per signer, until a request without a stub appears.
    let signer_count = door_config().signers.len() as u64;
    assert_eq!(lists(), signer_count, "v1beta1 is not watched yet");
    // Seen through v1 this request shows no key at all: the v1beta1 view serves it.
    let name = legacy_request(&env, "sandbox", &web).await;
    let v1 = pcr_api(env.client.clone(), "sandbox", "v1")
        .get(&name)
        .await
        .unwrap();
    assert!(v1.data["spec"].get("pkixPublicKey").is_none());
    let (t, _, obj) = terminal(&env, "sandbox", &name).await;
    assert_eq!(t, "Issued", "{obj}");
    let chain = obj["status"]["certificateChain"].as_str().unwrap();
    let v = verifiers::python_verify(
        chain,
        &env.root_pem(),
        "spiffe://cluster.local/ns/sandbox/sa/web",
    );
    assert!(v.ok, "{}", v.output);
    // Counted once a barrier through each view (a later request with a stub and one without,
    // each answered) is in.
    issued(
        &ask(
            &kubelet,
            "sandbox",
            "web-0",
            &source(PODS, KeyType::EcdsaP256, None),
        )
        .await,
    );
    let legacy_barrier = legacy_request(&env, "sandbox", &web).await;
    let (t, _, obj) = terminal(&env, "sandbox", &legacy_barrier).await;
    assert_eq!(t, "Issued", "{obj}");
    assert_eq!(
        status_writes(&env),
        4,
        "each request answered once, through one view (the two barriers included)"
    );
    assert_eq!(
        lists(),
        2 * signer_count,
        "the request without a stub opened the v1beta1 watches"
    );
}

/// With both versions served, the v1beta1 watches close once no request without a stub has been
/// seen for the idle time (15 minutes in production, 3 s here), stay closed, and open again
/// for the next such request, which is then answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_v1beta1_watches_close_and_open_again_for_the_next_request_without_a_stub() {
    let idle = Duration::from_secs(3);
    let env = Env::start_with(Options {
        authenticate: true,
        pod_certificates: Some(signers()),
        seed: Some(seed()),
        kubernetes_release: Some(Release::V1_37),
        certificates_v1beta1: true,
        stubless_idle: Some(idle),
        ..Options::default()
    })
    .await;
    let signer_count = door_config().signers.len() as u64;
    let lists = || env.sim.request_count("list", "podcertificaterequests");
    let web = pod(&env.sim, "sandbox", "web-0", "node-1", "web");
    kube_sim::wait_for(PATIENCE, || async { lists() == signer_count })
        .await
        .expect("the v1 watches list");

    // Two at once: the second is seen while the watches are already opening or open.
    for first in [
        legacy_request(&env, "sandbox", &web).await,
        legacy_request(&env, "sandbox", &web).await,
    ] {
        let (t, _, obj) = terminal(&env, "sandbox", &first).await;
        assert_eq!(t, "Issued", "{obj}");
    }
    assert_eq!(lists(), 2 * signer_count, "v1beta1 opened once for both");
    let open = readiness_line(&env, |l| l.contains("watching v1beta1 now")).await;
    assert!(open.contains("watching v1beta1 now"), "{open}");

    // Idle: the watches close (as /readyz says), and nothing opens them again on its own (not
    // the wake-up the second request left while they were open).
    let closed = readiness_line(&env, |l| !l.contains("watching v1beta1 now")).await;
    assert!(
        closed.contains("podCertificates:") && !closed.contains("watching v1beta1 now"),
        "{closed}"
    );
    tokio::time::sleep(idle).await;
    assert_eq!(
        lists(),
        2 * signer_count,
        "no v1beta1 watch reopened without a new request"
    );
    let still = readiness_line(&env, |_| true).await;
    assert!(!still.contains("watching v1beta1 now"), "{still}");

    let second = legacy_request(&env, "sandbox", &web).await;
    let (t, _, obj) = terminal(&env, "sandbox", &second).await;
    assert_eq!(t, "Issued", "{obj}");
    assert_eq!(
        lists(),
        3 * signer_count,
        "the v1beta1 watches had closed and opened again for the second request"
    );
    assert_eq!(status_writes(&env), 3, "each request answered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_api_readyz_names_the_feature_gate_and_certificate_requests_still_work() {
    let env = Env::start_with(Options {
        pod_certificates: Some(signers()),
        seed: Some(seed()),
        kubernetes_release: Some(Release::V1_35),
        pod_certificate_requests_off: true,
        ..Options::default()
    })
    .await;
    let readiness = env.controller.as_ref().unwrap().admin_addresses().readiness;
    let http = reqwest::Client::new();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !text.contains("podCertificates:") && tokio::time::Instant::now() < deadline {
        if let Ok(r) = http.get(format!("http://{readiness}/readyz")).send().await {
            text = r.text().await.unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.starts_with("ready:"), "{text}");
    assert!(
        text.contains("podCertificates: the PodCertificateRequest API"),
        "{text}"
    );
    assert!(
        text.contains("feature gate PodCertificateRequest"),
        "{text}"
    );
    assert!(
        text.contains("--runtime-config=certificates.k8s.io/v1beta1=true"),
        "{text}"
    );
    let (_, obj) = env
        .issue_workload("spiffe://cluster.local/ns/istio-system/sa/istiod")
        .await;
    assert!(
        obj["status"]["certificate"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sub_ca_with_less_than_an_hour_left_makes_requests_wait_then_a_rotation_issues_them() {
    // Every sub-CA the mock hands out lives 50 minutes: never enough for a 1 h pod certificate.
    let seed = seed().replace("    validityPeriod: P7D\n", "    validityPeriod: PT50M\n");
    assert!(seed.contains("PT50M"));
    let env = Env::start_with(Options {
        authenticate: true,
        pod_certificates: Some(signers()),
        seed: Some(seed),
        // The configuration refresh is what notices the provider change below.
        policy_refresh_interval: "1s",
        ..Options::default()
    })
    .await;
    pod(&env.sim, "sandbox", "web-0", "node-1", "web");
    let kubelet = env.sim.kubelet("node-1").await.unwrap();
    let (created, _) = kubelet
        .create_request("sandbox", "web-0", &source(PODS, KeyType::EcdsaP256, None))
        .await
        .unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_owned();
    let metrics = env.controller.as_ref().unwrap().metrics().clone();
    let retries = "firefly_issuance_retries_total{front_door=\"PodCertificateRequest\",reason=\"SubCaExpiring\"}";
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(&metrics, retries) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no SubCaExpiring retry: {}",
            metrics.render().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    warning_event(&env, "sandbox", &name, "SubCaExpiring").await;
    assert_eq!(status_writes(&env), 0, "temporary trouble writes nothing");

    // The PKI administrator lengthens the provider's validity in TLSPC: the refresh sees the
    // provider change, the sub-CA is replaced at once, and the waiting request is issued on its
    // next retry, with a full hour of life.
    let http = reqwest::Client::new();
    let api_key = env.mock.api_key();
    let providers: Value = http
        .get(format!(
            "{}{}",
            env.mock.base_url(),
            firefly::tlspc::paths::SUBCA_PROVIDERS
        ))
        .header("tppl-api-key", api_key.as_str())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let provider = providers["subCaProviders"][0]["id"].as_str().unwrap();
    let patched = http
        .patch(format!(
            "{}{}/{provider}",
            env.mock.base_url(),
            firefly::tlspc::paths::SUBCA_PROVIDERS
        ))
        .header("tppl-api-key", api_key.as_str())
        .json(&json!({"validityPeriod": "P7D"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200, "{:?}", patched.text().await);
    let issued = kube_sim::wait_for(Duration::from_secs(60), || async {
        stored_pcr(&env.sim, "sandbox", &name).is_some_and(|o| {
            o["status"]["certificateChain"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        })
    })
    .await;
    assert!(
        issued.is_ok(),
        "not issued after the rotation: {:?}",
        stored_pcr(&env.sim, "sandbox", &name).map(|o| o["status"].clone())
    );
    let obj = stored_pcr(&env.sim, "sandbox", &name).unwrap();
    let at = |k: &str| {
        obj["status"][k]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second()
    };
    assert!(
        at("notAfter") - at("notBefore") >= 3600,
        "{}",
        obj["status"]
    );
    assert_eq!(status_writes(&env), 1, "one answer, written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signer_naming_a_policy_tlspc_does_not_offer_stops_the_start_naming_the_key() {
    let env = Env::start_with(Options {
        seed: Some(seed()),
        ..Options::default()
    })
    .await;
    let mut config = env.config.clone();
    config.controller.pod_certificates = door_config();
    config.controller.pod_certificates.signers[1].policy_name = "no-such-policy".into();
    let err = firefly::run::Controller::start_with(
        &config,
        env.client.clone(),
        env.authority.clone(),
        firefly::run::StartOptions::default(),
    )
    .await
    .err()
    .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("controller.podCertificates.signers[1].policyName = \"no-such-policy\""),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_the_tables_rbac_the_door_is_refused_nothing_and_reads_no_single_object() {
    // The environment's own controller serves CertificateRequests only; a second controller with
    // the door on runs as a ServiceAccount holding exactly the product table's grants.
    let env = Env::start_with(Options {
        authenticate: true,
        seed: Some(seed()),
        ..Options::default()
    })
    .await;
    let sim = &env.sim;
    let grants = firefly::rbac::grants_for(
        GROUP,
        firefly::rbac::Features {
            pod_certificates: true,
            verify_pod: true,
            ..Default::default()
        },
    );
    let rules: Vec<Value> = grants
        .iter()
        .map(|g| json!({"apiGroups": [g.group], "resources": [g.resource], "verbs": [g.verb]}))
        .collect();
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "firefly-table"}, "rules": rules})).unwrap();
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "firefly-table"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "firefly-table"}, "subjects": [{"kind": "ServiceAccount", "name": "firefly", "namespace": "venafi"}]})).unwrap();
    let token = sim.service_account_token("venafi", "firefly").unwrap();
    let client = sim.client_with_token(&token).await.unwrap();
    let mut config = env.config.clone();
    config.controller.pod_certificates = door_config();
    // The pods exist before the door starts, so its pod cache holds them as the requests name
    // them: the one path that reads a single pod (a cache that trails) is not taken.
    pod(sim, "sandbox", "web-0", "node-1", "web");
    pod(sim, "other", "web-0", "node-1", "web");
    let _door = firefly::run::Controller::start_with(
        &config,
        client,
        env.authority.clone(),
        firefly::run::StartOptions {
            identity: Some("door".to_owned()),
            ..Default::default()
        },
    )
    .await
    .expect("the door starts");
    // The pod cache's first list is in: its watcher asks for the watch only once the list has
    // been applied to the cache (a request answered before would read the pod with a GET).
    let user = "system:serviceaccount:venafi:firefly";
    kube_sim::wait_for(PATIENCE, || async {
        sim.calls_by(user)
            .iter()
            .any(|c| c.resource == "pods" && c.subresource.is_empty() && c.verb == "watch")
    })
    .await
    .expect("the door's pod cache lists and watches the pods");
    let kubelet = sim.kubelet("node-1").await.unwrap();
    for signer in [VERIFIED, PODS] {
        let out = ask(
            &kubelet,
            "sandbox",
            "web-0",
            &source(signer, KeyType::EcdsaP256, None),
        )
        .await;
        issued(&out);
    }
    let out = ask(
        &kubelet,
        "other",
        "web-0",
        &source(PODS, KeyType::EcdsaP256, None),
    )
    .await;
    let Outcome::Denied { request, .. } = &out else {
        panic!("{out:?}")
    };
    warning_event(
        &env,
        "other",
        request["metadata"]["name"].as_str().unwrap(),
        "NamespaceNotAllowed",
    )
    .await;
    assert!(
        sim.refused_calls_by(user).is_empty(),
        "{:?}",
        sim.refused_calls_by(user)
    );
    let calls = sim.calls_by(user);
    let made = |resource: &str, subresource: &str, verb: &str| {
        calls
            .iter()
            .any(|c| c.resource == resource && c.subresource == subresource && c.verb == verb)
    };
    for (resource, subresource, verb) in [
        ("podcertificaterequests", "", "list"),
        ("podcertificaterequests", "", "watch"),
        ("podcertificaterequests", "status", "patch"),
        ("pods", "", "list"),
        ("pods", "", "watch"),
    ] {
        assert!(
            made(resource, subresource, verb),
            "{resource}/{subresource} {verb}: {calls:?}"
        );
    }
    assert!(
        !made("podcertificaterequests", "", "get") && !made("pods", "", "get"),
        "no GET per request: {calls:?}"
    );
}

/// The pod-certificate door's line of the controller's `/readyz` once `wanted` holds for it (or
/// the whole last text seen, after [`WAIT`]).
async fn readiness_line(env: &Env, wanted: impl Fn(&str) -> bool) -> String {
    let readiness = env.controller.as_ref().unwrap().admin_addresses().readiness;
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut text = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = http.get(format!("http://{readiness}/readyz")).send().await {
            text = r.text().await.unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find(|l| l.contains("podCertificates:") && wanted(l))
            {
                return line.to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_that_stops_being_served_is_dropped_by_discovering_again() {
    let env = env(Release::V1_37, true).await;
    let both = readiness_line(&env, |l| l.contains("v1beta1")).await;
    assert!(
        both.contains("through certificates.k8s.io/v1 (and v1beta1"),
        "{both}"
    );
    // The API server comes back with v1 disabled: the door's v1 watches get 404 and the door
    // discovers again instead of retrying a version that is gone.
    assert!(env.sim.stop_serving("certificates.k8s.io", "v1"));
    env.sim.faults().drop_watches();
    let v1beta1_only = readiness_line(&env, |l| l.ends_with("certificates.k8s.io/v1beta1")).await;
    assert!(
        v1beta1_only.ends_with("through certificates.k8s.io/v1beta1"),
        "the door still names v1 after it stopped being served: {v1beta1_only}"
    );
    let web = pod(&env.sim, "sandbox", "web-0", "node-1", "web");
    let name = legacy_request(&env, "sandbox", &web).await;
    let (t, _, obj) = terminal(&env, "sandbox", &name).await;
    assert_eq!(t, "Issued", "{obj}");
}

/// The environment's signer, except that signing for a workload of namespace `team-a` panics
/// (a bug in the issuing path, injected).
struct PanicsForTeamA {
    inner: std::sync::Arc<dyn firefly::issuer::Authority>,
    issue_calls: std::sync::atomic::AtomicU64,
}

impl firefly::issuer::Authority for PanicsForTeamA {
    fn readiness(&self) -> firefly::issuer::Readiness {
        self.inner.readiness()
    }
    fn issue(
        &self,
        request: &firefly_core::issuance::IssuanceRequest<'_>,
        opts: &firefly_core::ca::IssueOptions,
        now: std::time::SystemTime,
    ) -> firefly_core::issuance::Outcome {
        self.issue_calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let firefly_core::issuance::Subject::AssertedKey { identity, .. } = request.subject {
            assert!(
                !identity.spiffe_id.as_str().contains("/ns/team-a/"),
                "injected bug"
            );
        }
        self.inner.issue(request, opts, now)
    }
    fn chain_pems(&self) -> Option<Vec<String>> {
        self.inner.chain_pems()
    }
    fn sub_ca_not_after(&self) -> Option<std::time::SystemTime> {
        self.inner.sub_ca_not_after()
    }
    fn audit(&self) -> firefly::issuer::AuditSettings {
        self.inner.audit()
    }
    fn record_issued(&self, issued: &firefly::issuer::Issued) {
        self.inner.record_issued(issued);
    }
    fn policy(&self, name: &str) -> Option<std::sync::Arc<firefly_core::policy::CompiledPolicy>> {
        self.inner.policy(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_whose_signing_keeps_panicking_fails_with_internal_error_unsigned() {
    let mut env = env(Release::V1_37, false).await;
    env.stop_controller().await;
    let authority = std::sync::Arc::new(PanicsForTeamA {
        inner: env.authority.clone(),
        issue_calls: Default::default(),
    });
    env.controller = Some(
        firefly::run::Controller::start_with(
            &env.config,
            env.client.clone(),
            authority.clone(),
            firefly::run::StartOptions {
                identity: Some("panics".to_owned()),
                ..Default::default()
            },
        )
        .await
        .expect("controller starts"),
    );
    pod(&env.sim, "sandbox", "web-0", "node-1", "web");
    pod(&env.sim, "team-a", "api-0", "node-1", "api");
    let kubelet = env.sim.kubelet("node-1").await.unwrap();
    let pc = source(PODS, KeyType::EcdsaP256, Some(3600));
    let fine = ask(&kubelet, "sandbox", "web-0", &pc).await;
    issued(&fine);
    let bug = ask(&kubelet, "team-a", "api-0", &pc).await;
    let Outcome::Failed {
        reason,
        message,
        request,
    } = &bug
    else {
        panic!("not Failed: {bug:?}");
    };
    assert_eq!(reason, "InternalError", "{message}");
    assert!(
        request["status"]["certificateChain"].is_null(),
        "nothing is delivered: {request}"
    );
    let name = request["metadata"]["name"].as_str().unwrap();
    warning_event(&env, "team-a", name, "InternalError").await;
    // One signing per panicking decision, then none; plus the fine request's one.
    let calls = authority
        .issue_calls
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        calls,
        u64::from(firefly::pod_certs::decide::MAX_PANICS) + 1,
        "signing stops once the request is failed"
    );
    assert_eq!(status_writes(&env), 2, "one answer per request");
}

/// The stored PodCertificateRequest `ns/name`, whichever version serves it.
fn stored_pcr(sim: &KubeSim, ns: &str, name: &str) -> Option<Value> {
    sim.object("certificates.k8s.io", "podcertificaterequests", ns, name)
}

/// An issued pod certificate is audited once: the leaf's serial, its SPIFFE ID, the node that
/// asked (`system:node:<node>`) and the request's UID; no key material.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_pod_certificate_is_audited_with_its_serial_identity_node_and_request() {
    let audit = support::audit::AuditEvents::install();
    let env = Env::start_with(Options {
        authenticate: true,
        pod_certificates: Some(signers()),
        seed: Some(seed()),
        audit_log: (true, false),
        ..Options::default()
    })
    .await;
    pod(&env.sim, "sandbox", "web-0", "node-1", "web");
    let kubelet = env.sim.kubelet("node-1").await.unwrap();
    let out = ask(
        &kubelet,
        "sandbox",
        "web-0",
        &source(PODS, KeyType::EcdsaP256, None),
    )
    .await;
    let delivered = issued(&out);
    let leaf = verifiers::split_pem(&delivered.chain).remove(0);
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf.as_bytes()).unwrap();
    let serial = pem
        .parse_x509()
        .unwrap()
        .raw_serial_as_string()
        .replace(':', "");
    let uid = delivered.request["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();

    let issued_lines = || audit.with_message("certificate issued");
    // The audit line follows the accepted write, which the kubelet may see first.
    let deadline = tokio::time::Instant::now() + WAIT;
    while issued_lines().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lines = issued_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(
        line["spiffe_id"],
        "spiffe://cluster.local/ns/sandbox/sa/web"
    );
    // A PodCertificateRequest records no requester (a non-node creator is possible, DESIGN
    // §8): the line names none, and the node the request claims.
    assert_eq!(line["requester"], "");
    assert_eq!(line["node"], "node-1");
    assert_eq!(line["request_uid"], uid);
    assert_eq!(
        line["serial"].replace(':', "").to_ascii_lowercase(),
        serial.to_ascii_lowercase()
    );
    assert!(
        !line.contains_key("certificate"),
        "no raw certificate unless asked for"
    );
    assert!(
        !lines
            .iter()
            .flat_map(|l| l.values())
            .any(|v| v.contains("PRIVATE KEY")),
        "no key material"
    );
}

/// With leader election on, only the Lease holder answers pod-certificate requests: the standby
/// signs none while it waits, and once the leader stops it takes over and answers the next ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_lease_holder_answers_pod_certificates_and_the_standby_takes_over() {
    let mut env = Env::start_with(Options {
        authenticate: true,
        leader_election: true,
        pod_certificates: Some(signers()),
        seed: Some(seed()),
        ..Options::default()
    })
    .await;
    env.wait_lease_holder("replica-a", "replica-a leads").await;
    let (_standby_bootstrap, standby) = env.start_replica("replica-b").await;
    pod(&env.sim, "sandbox", "web-0", "node-1", "web");
    let kubelet = env.sim.kubelet("node-1").await.unwrap();
    let pc = source(PODS, KeyType::EcdsaP256, None);
    const SIGNED: &str = "firefly_signer_sign{success=\"true\",type=\"PodCertificateRequest\"}";
    for _ in 0..3 {
        issued(&ask(&kubelet, "sandbox", "web-0", &pc).await);
    }
    assert_eq!(
        counter(standby.metrics(), SIGNED),
        0,
        "the standby never signs"
    );
    let leader_signed = counter(env.controller.as_ref().unwrap().metrics(), SIGNED);
    assert_eq!(leader_signed, 3, "the leader signed each request once");

    env.stop_controller().await;
    env.wait_lease_holder("replica-b", "replica-b takes over")
        .await;
    let delivered = ask(&kubelet, "sandbox", "web-0", &pc).await;
    judge(
        &env,
        &issued(&delivered),
        "spiffe://cluster.local/ns/sandbox/sa/web",
        86_400,
    );
    assert_eq!(
        counter(standby.metrics(), SIGNED),
        1,
        "the new leader signs"
    );
    standby.shutdown().await;
}

/// A status write the API server keeps refusing (a 500 here; a missing `sign` grant or a
/// fail-closed admission webhook in a cluster) is retried with a per-request backoff, not at a
/// fixed pace: each retry signs a certificate that is then not delivered, so a fixed 5 s pause
/// signed ~180 certificates per request before garbage collection. Once the API server takes
/// writes again, the request is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_status_write_refused_again_and_again_is_retried_with_a_growing_backoff() {
    let refused = support::audit::AuditEvents::install();
    let env = env(Release::V1_37, false).await;
    let sim = &env.sim;
    pod(sim, "sandbox", "web-0", "node-1", "web");
    let kubelet = sim.kubelet("node-1").await.unwrap();
    sim.faults().inject(
        kube_sim::FaultRule::error(500)
            .verb("patch")
            .resource("podcertificaterequests/status"),
    );
    let (created, _) = kubelet
        .create_request("sandbox", "web-0", &source(PODS, KeyType::EcdsaP256, None))
        .await
        .unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_owned();
    let metrics = env.controller.as_ref().unwrap().metrics().clone();
    let signed = "firefly_signer_sign{success=\"true\",type=\"PodCertificateRequest\"}";
    // A fixed pause keeps every gap alike (the pod door once paused 5 s between attempts).
    let gaps = refused.refused_write_gaps(6).await;
    support::audit::assert_backoff_grows(&gaps);
    sim.faults().clear();
    // The next attempt comes after the next pause (4–8 s) and is taken.
    kube_sim::wait_for(PATIENCE, || async {
        stored_pcr(sim, "sandbox", &name)
            .is_some_and(|o| o["status"]["certificateChain"].is_string())
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "not issued once writes are taken: {:?}",
            stored_pcr(sim, "sandbox", &name)
        )
    });
    assert!(
        counter(&metrics, signed) <= status_writes(&env),
        "one signature per attempt at most"
    );
    // Counted once the write is accepted, which can be just after the chain is stored.
    let _ = kube_sim::wait_for(PATIENCE, || async { counter(&metrics, ISSUED) >= 1 }).await;
    assert_eq!(counter(&metrics, ISSUED), 1);
}

/// With `verifyPod`, the pod cache follows a watch that may trail the kubelet: here the pod was
/// deleted and created again under its name (a StatefulSet's way) while the cache's watch lags
/// 20 s, so the cache still holds the old pod's UID. The request names the new pod, and is
/// issued: the API server's copy decides, read only because the cached one did not match.
/// Before, the stale copy denied the request for good (`PolicyDenied`, `spec.podUID`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_recreated_while_the_pod_cache_trails_is_verified_against_the_api_server() {
    let env = env(Release::V1_37, false).await;
    let sim = &env.sim;
    let old = pod(sim, "sandbox", "web-0", "node-1", "web");
    let kubelet = sim.kubelet("node-1").await.unwrap();
    let pc = source(VERIFIED, KeyType::EcdsaP256, None);
    issued(&ask(&kubelet, "sandbox", "web-0", &pc).await);
    sim.clear_calls();

    sim.faults()
        .delay_watch_events("pods", Duration::from_secs(20));
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(env.client.clone(), "sandbox")
        .delete("web-0", &Default::default())
        .await
        .expect("pod deleted");
    let new = pod(sim, "sandbox", "web-0", "node-1", "web");
    assert_ne!(old["metadata"]["uid"], new["metadata"]["uid"]);
    let out = ask(&kubelet, "sandbox", "web-0", &pc).await;
    let delivered = issued(&out);
    judge(
        &env,
        &delivered,
        "spiffe://cluster.local/ns/sandbox/sa/web",
        86_400,
    );
    // The controller runs as the admin here; the kubelet reads the pod as its node.
    let calls = sim.calls_by("kubernetes-admin");
    assert!(
        calls
            .iter()
            .any(|c| c.resource == "pods" && c.subresource.is_empty() && c.verb == "get"),
        "the pod was read from the API server: {calls:?}"
    );

    // A request whose pod differs from the API server's copy too is still denied at once.
    let forged = forged(&env, VERIFIED, "sandbox", &new, "admin").await;
    let (t, reason, obj) = terminal(&env, "sandbox", &forged).await;
    assert_eq!(
        (t.as_str(), reason.as_str()),
        ("Denied", "PolicyDenied"),
        "{obj}"
    );
}
