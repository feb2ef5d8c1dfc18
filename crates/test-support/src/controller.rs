//! The controller end-to-end environment: kube-sim and the mock TLSPC in-process over loopback
//! HTTP, the shipped seed, a real sub-CA obtained from the mock, and the controller itself;
//! builders for istio-csr-shaped requests and the approver's moves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use firefly::bootstrap::{Bootstrap, Signer, SystemClock};
use firefly::config::Config;
use firefly::issuer::{AuditSettings, Authority, Issued, Readiness};
use firefly::run::{Controller, ControllerHandle, StartOptions};
use firefly::tlspc_mock::MockServer;
use firefly_core::ca::IssueOptions;
use firefly_core::issuance::{IssuanceRequest, Outcome};
use firefly_core::policy::CompiledPolicy;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube_sim::{KubeSim, SimOptions};
use serde_json::{Value, json};

pub use crate::istio::{
    GROUP, ISTIO_CSR_NAMESPACE as NS, ISTIO_CSR_USERNAME as ISTIO_CSR_SA,
    ISTIO_MTLS_POLICY as POLICY, KeyKind,
};
pub use crate::verifiers::{Verdict, openssl_verify, split_pem};
pub use crate::{PATIENCE, SHIPPED_SEED};

/// Knobs of the environment's controller configuration.
#[derive(Clone)]
pub struct Options {
    /// `controller.allowedRequesters`: istio-csr by default; `"*"` where a test means everyone.
    pub allowed_requesters: Vec<String>,
    /// `controller.meshIssuerNamespaces` (`None`: the configuration's default, istio-system).
    pub mesh_issuer_namespaces: Option<Vec<String>>,
    pub check_approval: bool,
    pub leader_election: bool,
    pub success_events: bool,
    pub policy_refresh_interval: &'static str,
    pub policy_max_staleness: &'static str,
    /// The mock's `advancedSettings` (enableIssuanceAuditLog, includeRawCertDataInAuditLog).
    pub audit_log: (bool, bool),
    /// kube-sim keeps every write body (`KubeSim::writes`).
    pub record_writes: bool,
    /// Authentication and RBAC on in kube-sim (ServiceAccount tokens; the controller stays admin).
    pub authenticate: bool,
    /// `controller.certificateSigningRequests.enabled`.
    pub certificate_signing_requests: bool,
    /// `controller.maxRetryDuration`.
    pub max_retry_duration: &'static str,
    /// The `controller.podCertificates` block (YAML indented by four spaces), when set.
    pub pod_certificates: Option<String>,
    /// The mock's seed instead of the shipped one (the audit knobs still apply).
    pub seed: Option<String>,
    /// kube-sim's Kubernetes release (`None`: its default, the newest).
    pub kubernetes_release: Option<kube_sim::Release>,
    /// kube-sim serves `certificates.k8s.io/v1beta1` (`--runtime-config`).
    pub certificates_v1beta1: bool,
    /// kube-sim serves no PodCertificateRequest API (the feature gate off).
    pub pod_certificate_requests_off: bool,
    /// How long the pod door's v1beta1 watches stay open after the last request without a stub
    /// (`None`: the controller's 15 minutes).
    pub stubless_idle: Option<std::time::Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allowed_requesters: vec![ISTIO_CSR_SA.to_owned()],
            mesh_issuer_namespaces: None,
            check_approval: true,
            leader_election: false,
            success_events: false,
            policy_refresh_interval: "1m",
            policy_max_staleness: "30m",
            audit_log: (false, false),
            record_writes: false,
            authenticate: false,
            certificate_signing_requests: false,
            max_retry_duration: "5m",
            pod_certificates: None,
            seed: None,
            kubernetes_release: None,
            certificates_v1beta1: false,
            pod_certificate_requests_off: false,
            stubless_idle: None,
        }
    }
}

/// The `firefly run` configuration of the environment: the mock's URL and client ID, the key
/// file the mock generated, loopback admin ports.
pub fn config_yaml(
    mock_url: &str,
    client_id: &str,
    key_file: &std::path::Path,
    opts: &Options,
) -> String {
    let requesters = serde_json::to_string(&opts.allowed_requesters).unwrap();
    let mesh = match &opts.mesh_issuer_namespaces {
        Some(list) => format!(
            "\n  meshIssuerNamespaces: {}",
            serde_json::to_string(list).unwrap()
        ),
        None => String::new(),
    };
    format!(
        r#"
bootstrap:
  vaas:
    url: {mock_url}
    auth:
      clientID: {client_id}
      privateKeyFile: {key_file}
    csr:
      instanceNaming: controller-test
    policyRefreshInterval: {refresh}
    policyMaxStaleness: {staleness}
controller:
  leaderElectionNamespace: venafi
  leaderElection:
    enabled: {le}
    leaseDuration: 4s
    renewDeadline: 3s
    retryPeriod: 500ms
  cert-manager:
    checkApproval: {check}
  allowedRequesters: {requesters}{mesh}
  successEvents: {success}
  maxConcurrentReconciles: 64
  maxRetryDuration: {max_retry}
  certificateSigningRequests:
    enabled: {csr}{pod_certificates}
admin:
  readinessAddress: 127.0.0.1:0
  metricsAddress: 127.0.0.1:0
  chainAddress: 127.0.0.1:0
logging:
  format: json
  level: info
"#,
        key_file = key_file.display(),
        refresh = opts.policy_refresh_interval,
        staleness = opts.policy_max_staleness,
        le = opts.leader_election,
        check = opts.check_approval,
        success = opts.success_events,
        max_retry = opts.max_retry_duration,
        csr = opts.certificate_signing_requests,
        pod_certificates = opts
            .pod_certificates
            .as_deref()
            .map(|block| format!("\n  podCertificates:\n{block}"))
            .unwrap_or_default(),
    )
}

pub struct Env {
    pub sim: KubeSim,
    pub mock: MockServer,
    pub client: kube::Client,
    pub bootstrap: Bootstrap,
    pub authority: Arc<Signer>,
    pub config: Config,
    pub controller: Option<ControllerHandle>,
    pub dir: tempfile::TempDir,
    /// [`Options::stubless_idle`], for every controller this environment starts.
    pub stubless_idle: Option<std::time::Duration>,
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Env {
        firefly::crypto::install_default_provider();
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "firefly=debug,kube_runtime=info,warn",
            ))
            .try_init();
        let mut sim_options = SimOptions::default();
        sim_options.record_writes = opts.record_writes;
        sim_options.authenticate = opts.authenticate;
        if let Some(release) = opts.kubernetes_release {
            sim_options.kubernetes_release = release;
        }
        sim_options.certificates_v1beta1 = opts.certificates_v1beta1;
        sim_options.pod_certificate_requests = !opts.pod_certificate_requests_off;
        let sim = crate::cluster::start_sim_with(
            sim_options,
            &[NS, "sandbox", "venafi", "other", "team-a"],
        )
        .await
        .expect("kube-sim starts with cert-manager's CRD and ours");
        let (audit, raw) = opts.audit_log;
        let seed_text = opts
            .seed
            .as_deref()
            .unwrap_or(SHIPPED_SEED)
            .replace(
                "enableIssuanceAuditLog: false",
                &format!("enableIssuanceAuditLog: {audit}"),
            )
            .replace(
                "includeRawCertDataInAuditLog: false",
                &format!("includeRawCertDataInAuditLog: {raw}"),
            );
        let mock = crate::tlspc_mock::serve(&seed_text, None)
            .await
            .expect("mock starts");
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("svc-acct.key");
        let key = mock
            .service_account_key_pem()
            .expect("the mock generated the account key");
        std::fs::write(&key_file, key.as_bytes()).unwrap();
        let yaml = config_yaml(mock.base_url(), mock.client_id(), &key_file, &opts);
        let config = Config::from_yaml_str(&yaml).expect("config parses");
        let bootstrap = Bootstrap::start(&config, Arc::new(SystemClock))
            .await
            .expect("bootstrap obtains a sub-CA from the mock");
        let authority = Arc::new(bootstrap.signer());
        let client = sim.client().await.expect("client");
        let mut env = Env {
            sim,
            mock,
            client,
            bootstrap,
            authority,
            config,
            controller: None,
            dir,
            stubless_idle: opts.stubless_idle,
        };
        env.start_controller().await;
        env
    }

    /// The root the sub-CA chains to.
    pub fn root_pem(&self) -> String {
        self.authority
            .current()
            .expect("active sub-CA")
            .root_pem()
            .to_owned()
    }

    pub async fn start_controller(&mut self) {
        let handle = Controller::start_with(
            &self.config,
            self.client.clone(),
            self.authority.clone(),
            StartOptions {
                identity: Some("replica-a".to_owned()),
                pod_certificates_stubless_idle: self.stubless_idle,
                ..StartOptions::default()
            },
        )
        .await
        .expect("controller starts");
        self.controller = Some(handle);
    }

    /// Another replica: its own bootstrap (its own sub-CA from the mock) and its own controller
    /// against the same API server, named `identity` on the Lease.
    pub async fn start_replica(&self, identity: &str) -> (Bootstrap, ControllerHandle) {
        self.start_replica_with(identity, |signer| signer).await
    }

    /// [`Env::start_replica`] whose controller uses `wrap` of the replica's own signer as its
    /// authority (a test's wrapper that changes what it reports or signs).
    pub async fn start_replica_with(
        &self,
        identity: &str,
        wrap: impl FnOnce(Arc<dyn firefly::issuer::Authority>) -> Arc<dyn firefly::issuer::Authority>,
    ) -> (Bootstrap, ControllerHandle) {
        let bootstrap = Bootstrap::start(&self.config, Arc::new(SystemClock))
            .await
            .expect("replica bootstrap");
        let handle = Controller::start_with(
            &self.config,
            self.sim.client().await.expect("client"),
            wrap(Arc::new(bootstrap.signer())),
            StartOptions {
                identity: Some(identity.to_owned()),
                pod_certificates_stubless_idle: self.stubless_idle,
                ..StartOptions::default()
            },
        )
        .await
        .expect("replica starts");
        (bootstrap, handle)
    }

    /// The real kubectl against this environment's kube-sim (its kubeconfig, as its admin),
    /// with `stdin` piped in when given; panics with kubectl's output unless it succeeds, and
    /// returns its stdout.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.sim.kubeconfig_path())
            .env_remove("KUBECONFIG")
            .args(args);
        let out = if let Some(input) = stdin {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("kubectl runs");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        } else {
            cmd.output().expect("kubectl runs")
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// The holder recorded on the leader Lease.
    pub fn lease_holder(&self) -> Option<String> {
        crate::cluster::lease_holder(&self.sim, "venafi", "firefly-controller")
    }

    /// Waits until `identity` holds the leader Lease; panics with `why` after [`PATIENCE`].
    pub async fn wait_lease_holder(&self, identity: &str, why: &str) {
        kube_sim::wait_for(PATIENCE, || async {
            self.lease_holder().as_deref() == Some(identity)
        })
        .await
        .expect(why);
    }

    pub async fn stop_controller(&mut self) {
        if let Some(h) = self.controller.take() {
            h.shutdown().await;
        }
    }

    fn api(&self, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
        let (group, version, plural) = match kind {
            "Issuer" => (GROUP, "v1alpha1", "issuers"),
            "ClusterIssuer" => (GROUP, "v1alpha1", "clusterissuers"),
            _ => ("cert-manager.io", "v1", "certificaterequests"),
        };
        let ar = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        };
        match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Creates an Issuer (namespaced) or ClusterIssuer (`ns` None) with `spec`.
    pub async fn create_issuer(&self, ns: Option<&str>, name: &str, spec: Value) {
        let kind = if ns.is_some() {
            "Issuer"
        } else {
            "ClusterIssuer"
        };
        let obj = json!({
            "apiVersion": format!("{GROUP}/v1alpha1"),
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        });
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        self.api(kind, ns)
            .create(&PostParams::default(), &obj)
            .await
            .expect("issuer created");
    }

    /// Creates the issuer and waits until the controller reports it Ready.
    pub async fn ready_issuer(&self, ns: Option<&str>, name: &str, spec: Value) {
        self.create_issuer(ns, name, spec).await;
        let plural = if ns.is_some() {
            "issuers"
        } else {
            "clusterissuers"
        };
        let ns = ns.unwrap_or("");
        kube_sim::wait_for(PATIENCE, || async {
            self.sim
                .object(GROUP, plural, ns, name)
                .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("True"))
        })
        .await
        .expect("issuer becomes Ready");
    }

    /// Creates a CertificateRequest; returns its (server-generated) name.
    pub async fn create_request(&self, req: &RequestBuilder) -> String {
        let obj: DynamicObject = serde_json::from_value(req.to_json()).unwrap();
        let created = self
            .api("CertificateRequest", Some(&req.namespace))
            .create(&PostParams::default(), &obj)
            .await
            .expect("request created");
        created.metadata.name.unwrap()
    }

    /// Sets a condition as an approver would: server-side apply under its own field manager.
    pub async fn set_approval(&self, ns: &str, name: &str, type_: &str) {
        let body = json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {"name": name, "namespace": ns},
            "status": {"conditions": [{
                "type": type_,
                "status": "True",
                "reason": if type_ == "Approved" { "cert-manager.io" } else { "PolicyDenied" },
                "message": format!("{type_} by the test approver"),
                "lastTransitionTime": jiff::Timestamp::now().to_string(),
            }]},
        });
        // Like cert-manager's approver, retry when the API server answers with an error
        // (the fault tests inject 409s and 500s on status writes).
        let api = self.api("CertificateRequest", Some(ns));
        let params = PatchParams::apply("cert-manager-approver").force();
        let mut attempts = 0;
        loop {
            match api.patch_status(name, &params, &Patch::Apply(&body)).await {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if attempts < 50 && (s.code == 409 || s.code >= 500) => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("approval of {ns}/{name} not written: {e}"),
            }
        }
    }

    pub async fn approve(&self, ns: &str, name: &str) {
        self.set_approval(ns, name, "Approved").await;
    }

    pub fn request(&self, ns: &str, name: &str) -> Option<Value> {
        self.sim
            .object("cert-manager.io", "certificaterequests", ns, name)
    }

    /// istio-csr's path for one workload: a Ready issuer `firefly-istio` in istio-system, a
    /// P-256 istio-agent CSR for `spiffe`, created, approved and waited for until `Issued`.
    /// Returns the request's name and the object as issued.
    pub async fn issue_workload(&self, spiffe: &str) -> (String, Value) {
        self.ready_issuer(Some(NS), "firefly-istio", json!({}))
            .await;
        self.issue_through_ready_issuer(spiffe).await
    }

    /// As [`Env::issue_workload`], through the issuer `firefly-istio` already made Ready.
    pub async fn issue_through_ready_issuer(&self, spiffe: &str) -> (String, Value) {
        let (_key, csr) = CsrSpec::workload(KeyKind::P256, spiffe).build();
        let name = self
            .create_request(&RequestBuilder::istio("firefly-istio", &csr, spiffe))
            .await;
        self.approve(NS, &name).await;
        let obj = self.wait_ready_reason(NS, &name, "Issued").await;
        (name, obj)
    }

    /// Waits until the request's Ready condition has `reason`; returns the object.
    pub async fn wait_ready_reason(&self, ns: &str, name: &str, reason: &str) -> Value {
        let found = kube_sim::wait_for(PATIENCE, || async {
            self.request(ns, name)
                .is_some_and(|o| ready_reason(&o).as_deref() == Some(reason))
        })
        .await;
        let obj = self.request(ns, name).unwrap_or(Value::Null);
        found.unwrap_or_else(|_| {
            panic!("request {ns}/{name} never reached Ready reason {reason}: {obj:#}")
        });
        obj
    }

    /// Signatures this controller made (`firefly_signer_sign{success="true"}`).
    pub fn signed(&self) -> u64 {
        self.controller
            .as_ref()
            .map(|c| {
                c.metrics()
                    .signer_sign
                    .with_label_values(&["true", "CertificateRequest"])
                    .get()
            })
            .unwrap_or(0)
    }

    pub async fn delete_request(&self, ns: &str, name: &str) {
        self.api("CertificateRequest", Some(ns))
            .delete(name, &Default::default())
            .await
            .expect("request deleted");
    }

    pub fn status_writes(&self) -> u64 {
        self.sim
            .request_count("patch", "certificaterequests/status")
    }

    /// Events about the named object, read through the API as `kubectl get events` would.
    pub async fn events_for(
        &self,
        ns: &str,
        name: &str,
    ) -> Vec<k8s_openapi::api::events::v1::Event> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), ns);
        let list = api.list(&Default::default()).await.expect("events list");
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect()
    }
}

pub fn ready_reason(obj: &Value) -> Option<String> {
    condition(obj, "Ready").and_then(|c| c["reason"].as_str().map(str::to_owned))
}

pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

pub fn ready_message(obj: &Value) -> String {
    condition(obj, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or("")
        .to_owned()
}

pub fn decoded(obj: &Value, field: &str) -> String {
    let b64 = obj["status"][field].as_str().unwrap_or("");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

/// The CSR shapes of cert-manager.md §5.
#[derive(Clone, Debug)]
pub struct CsrSpec {
    pub key: KeyKind,
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub common_name: Option<String>,
    pub empty_org: bool,
}

impl CsrSpec {
    /// istio-agent's workload CSR: `O=` (one empty Organization), exactly one URI SAN.
    pub fn workload(key: KeyKind, spiffe: &str) -> CsrSpec {
        CsrSpec {
            key,
            uris: vec![spiffe.into()],
            dns: vec![],
            common_name: None,
            empty_org: true,
        }
    }
    /// istio-csr's serving certificate CSR: DNS SANs only.
    pub fn serving(dns: &[&str]) -> CsrSpec {
        CsrSpec {
            key: KeyKind::P256,
            uris: vec![],
            dns: dns.iter().map(|d| (*d).to_owned()).collect(),
            common_name: None,
            empty_org: true,
        }
    }

    /// Generates the key and the PEM CSR.
    pub fn build(&self) -> (rcgen::KeyPair, String) {
        let key = match self.key {
            KeyKind::Rsa2048 => {
                rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key")
            }
            KeyKind::P256 => {
                rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key")
            }
        };
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        if let Some(cn) = &self.common_name {
            dn.push(rcgen::DnType::CommonName, cn.clone());
        }
        if self.empty_org {
            dn.push(rcgen::DnType::OrganizationName, "");
        }
        params.distinguished_name = dn;
        let mut sans = Vec::new();
        for u in &self.uris {
            sans.push(rcgen::SanType::URI(u.clone().try_into().unwrap()));
        }
        for d in &self.dns {
            sans.push(rcgen::SanType::DnsName(d.clone().try_into().unwrap()));
        }
        params.subject_alt_names = sans;
        let csr = params.serialize_request(&key).expect("CSR");
        (key, csr.pem().unwrap())
    }
}

/// A CertificateRequest in istio-csr's shape, with knobs.
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    pub namespace: String,
    pub issuer_name: String,
    pub issuer_kind: Option<String>,
    pub issuer_group: Option<String>,
    pub csr_pem: String,
    pub duration: Option<String>,
    pub usages: Option<Vec<String>>,
    pub username: Option<String>,
    pub is_ca: Option<bool>,
    pub annotations: serde_json::Map<String, Value>,
}

impl RequestBuilder {
    /// A workload SVID request as istio-csr creates it.
    pub fn istio(issuer: &str, csr_pem: &str, spiffe: &str) -> RequestBuilder {
        let mut annotations = serde_json::Map::new();
        annotations.insert("istio.cert-manager.io/identities".into(), spiffe.into());
        annotations.insert("firefly.venafi.com/policy-name".into(), POLICY.into());
        RequestBuilder {
            namespace: NS.into(),
            issuer_name: issuer.into(),
            issuer_kind: Some("Issuer".into()),
            issuer_group: Some(GROUP.into()),
            csr_pem: csr_pem.into(),
            duration: Some("1h0m0s".into()),
            usages: Some(vec!["client auth".into(), "server auth".into()]),
            username: Some(ISTIO_CSR_SA.into()),
            is_ca: None,
            annotations,
        }
    }

    pub fn annotation(mut self, key: &str, value: Option<&str>) -> RequestBuilder {
        match value {
            Some(v) => {
                self.annotations.insert(key.into(), v.into());
            }
            None => {
                self.annotations.remove(key);
            }
        }
        self
    }

    pub fn to_json(&self) -> Value {
        let mut issuer_ref = json!({"name": self.issuer_name});
        if let Some(k) = &self.issuer_kind {
            issuer_ref["kind"] = k.clone().into();
        }
        if let Some(g) = &self.issuer_group {
            issuer_ref["group"] = g.clone().into();
        }
        let mut spec = json!({
            "request": base64::engine::general_purpose::STANDARD.encode(&self.csr_pem),
            "issuerRef": issuer_ref,
        });
        if let Some(d) = &self.duration {
            spec["duration"] = d.clone().into();
        }
        if let Some(u) = &self.usages {
            spec["usages"] = json!(u);
        }
        if let Some(u) = &self.username {
            spec["username"] = u.clone().into();
        }
        if let Some(c) = self.is_ca {
            spec["isCA"] = c.into();
        }
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {"generateName": "istio-csr-", "namespace": self.namespace, "annotations": self.annotations},
            "spec": spec,
        })
    }
}

/// Polls `count` (attempts so far, none yet) for `window` and returns the gaps between
/// successive attempts, as seen at a 10 ms resolution.
pub async fn attempt_gaps(count: impl Fn() -> u64, window: Duration) -> Vec<Duration> {
    let start = tokio::time::Instant::now();
    let (mut seen, mut last) = (count(), None);
    let mut gaps = Vec::new();
    while start.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = count();
        if now > seen {
            let at = tokio::time::Instant::now();
            if let Some(previous) = last {
                gaps.push(at - previous);
            }
            (seen, last) = (now, Some(at));
        }
    }
    gaps
}

/// CertificateRequests `handle`'s controller signed (`firefly_signer_sign{success="true"}`).
pub fn requests_signed(handle: &ControllerHandle) -> u64 {
    handle
        .metrics()
        .signer_sign
        .with_label_values(&["true", "CertificateRequest"])
        .get()
}

/// A replica's real signer, observed and steered by a test: it counts the calls to `issue` and
/// the usage records, can be switched to "cannot sign" (readiness only: what it reports, as a
/// lapsed sub-CA would), and runs `before_issue` on every request (a test's injected bug).
/// Every other method is the real signer's.
pub struct Observed {
    inner: Arc<dyn Authority>,
    /// Calls to `issue`.
    pub issue_calls: AtomicU64,
    /// Calls to `record_issued`.
    pub usage_records: AtomicU64,
    /// Whether readiness is the real signer's (`true`, the start) or "cannot sign".
    pub can_sign: AtomicBool,
    before_issue: fn(&IssuanceRequest<'_>),
}

impl Observed {
    /// Observes `inner`, able to sign, with nothing run before `issue`.
    pub fn new(inner: Arc<dyn Authority>) -> Arc<Observed> {
        Observed::with_before_issue(inner, |_| {})
    }

    /// Observes `inner`, running `before_issue` on each request before the real signer sees it.
    pub fn with_before_issue(
        inner: Arc<dyn Authority>,
        before_issue: fn(&IssuanceRequest<'_>),
    ) -> Arc<Observed> {
        Arc::new(Observed {
            inner,
            issue_calls: 0.into(),
            usage_records: 0.into(),
            can_sign: true.into(),
            before_issue,
        })
    }
}

impl Authority for Observed {
    fn readiness(&self) -> Readiness {
        if self.can_sign.load(Ordering::SeqCst) {
            self.inner.readiness()
        } else {
            Readiness {
                ready: false,
                message: "no valid sub-CA (switched off by the test)".to_owned(),
            }
        }
    }
    fn issue(
        &self,
        request: &IssuanceRequest<'_>,
        opts: &IssueOptions,
        now: SystemTime,
    ) -> Outcome {
        self.issue_calls.fetch_add(1, Ordering::SeqCst);
        (self.before_issue)(request);
        self.inner.issue(request, opts, now)
    }
    fn chain_pems(&self) -> Option<Vec<String>> {
        self.inner.chain_pems()
    }
    fn sub_ca_not_after(&self) -> Option<SystemTime> {
        self.inner.sub_ca_not_after()
    }
    fn audit(&self) -> AuditSettings {
        self.inner.audit()
    }
    fn record_issued(&self, issued: &Issued) {
        self.usage_records.fetch_add(1, Ordering::SeqCst);
        self.inner.record_issued(issued);
    }
    fn policy(&self, name: &str) -> Option<Arc<CompiledPolicy>> {
        self.inner.policy(name)
    }
}
