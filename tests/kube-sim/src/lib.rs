//! kube-sim: an in-memory Kubernetes API server for tests (not a cluster; see README.md).
//!
//! Start one with [`KubeSim::start`], talk to it with [`KubeSim::client`] (kube-rs) or through the
//! kubeconfig at [`KubeSim::kubeconfig_path`] (kubectl, the Python client), install CRDs with
//! [`KubeSim::install_crds_yaml`], and break it on purpose with [`KubeSim::faults`].

pub mod kubelet;
mod sim;

pub use sim::apply::ApplyOwner;
pub use sim::auth::TokenUser;
pub use sim::faults::{FaultRule, Faults};
pub use sim::rbac::Call;
pub use sim::release::{Release, parse_runtime_config};
pub use sim::status::{ApiError, Cause};
pub use sim::tap::WriteRecord;

/// cert-manager's CertificateRequest CRD (cert-manager.io/v1, release v1.21.1), transcribed by hand
/// from the published schema; see the file's header.
pub const CERT_MANAGER_CERTIFICATE_REQUEST_CRD: &str =
    include_str!("../../upstream-crds/certificaterequests.cert-manager.io.yaml");

use anyhow::Context as _;
use base64::Engine as _;
use sim::server::Server;
use sim::store::{Counters, Store, WriteOpts};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How to run a kube-sim.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SimOptions {
    /// Serve HTTPS with a generated CA and a separate CA:false server certificate.
    pub tls: bool,
    /// Legacy bearer tokens mapped to usernames (group `system:authenticated`), authorized for
    /// everything without RBAC, as before RBAC existed; a request without a token gets 401. When
    /// these are the only credentials, the kubeconfig and [`KubeSim::client`] use the first one.
    /// Prefer [`SimOptions::token_users`].
    pub tokens: Vec<(String, String)>,
    /// Static bearer tokens (kube-apiserver's `--token-auth-file` lines). Setting any, or
    /// [`SimOptions::token_auth_file`], or [`SimOptions::authenticate`], turns authentication and
    /// RBAC on: the kubeconfig then carries an admin token (`system:masters`) and a request without
    /// credentials is `system:anonymous`.
    pub token_users: Vec<TokenUser>,
    /// A token file in kube-apiserver's CSV format (`token,user,uid,"group1,group2"`), read at start.
    pub token_auth_file: Option<PathBuf>,
    /// Authentication and RBAC on even without static users (admin token, ServiceAccount tokens).
    pub authenticate: bool,
    /// The emulated Kubernetes release (default: the newest).
    pub kubernetes_release: Release,
    /// `--runtime-config certificates.k8s.io/v1beta1=true`: on 1.37 also serve v1beta1.
    pub certificates_v1beta1: bool,
    /// Serve PodCertificateRequest (default). `false`: as kube-apiserver with the
    /// `PodCertificateRequest` feature gate off (ClusterTrustBundle and CertificateSigningRequest
    /// unaffected).
    pub pod_certificate_requests: bool,
    /// Serve ClusterTrustBundle (default). `false`: as kube-apiserver with the
    /// `ClusterTrustBundle` feature gate off, where PodCertificateRequest is still served.
    pub cluster_trust_bundles: bool,
    /// Address to bind (default `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// Where to write the kubeconfig (default: a file in a temporary directory owned by the sim).
    pub kubeconfig: Option<PathBuf>,
    /// Events kept per resource for watch-from-resourceVersion (older → 410 Expired).
    pub history_limit: usize,
    /// Events a watch may fall behind before the server closes it (per resource; default 65,536).
    pub watch_buffer: usize,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Emulate cert-manager's webhook: on create of a `cert-manager.io` CertificateRequest, set
    /// `spec.username`, `uid`, `groups` and `extra` from the caller (callers in `system:masters`
    /// keep what they send).
    pub set_certificaterequest_username: bool,
    /// Keep the body of every create, update and patch request ([`KubeSim::writes`]).
    pub record_writes: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            tls: false,
            tokens: Vec::new(),
            token_users: Vec::new(),
            token_auth_file: None,
            authenticate: false,
            kubernetes_release: Release::default(),
            certificates_v1beta1: false,
            pod_certificate_requests: true,
            cluster_trust_bundles: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig: None,
            history_limit: 20_000,
            watch_buffer: sim::store::DEFAULT_WATCH_BUFFER,
            bookmark_interval: Duration::from_secs(2),
            set_certificaterequest_username: true,
            record_writes: false,
        }
    }
}

impl SimOptions {
    /// The defaults with [`SimOptions::authenticate`] on: tokens, RBAC and the admission rules
    /// that depend on the caller (requester fields, NodeRestriction), as a cluster has them.
    pub fn authenticating() -> Self {
        Self {
            authenticate: true,
            ..Self::default()
        }
    }
}

/// A running kube-sim; stops (closing every connection) on drop.
#[derive(Debug)]
pub struct KubeSim {
    addr: SocketAddr,
    tls: bool,
    server: Arc<Server>,
    kubeconfig: PathBuf,
    ca_pem: Option<String>,
    tokens: Vec<(String, String)>,
    shutdown: tokio::sync::watch::Sender<bool>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

struct Certs {
    ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn make_certs() -> anyhow::Result<Certs> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().context("generating the kube-sim CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca.distinguished_name
        .push(DnType::CommonName, "kube-sim CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca
        .self_signed(&ca_key)
        .context("self-signing the kube-sim CA")?;
    let srv_key = KeyPair::generate().context("generating the server key")?;
    let mut srv = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .context("server parameters")?;
    srv.distinguished_name.push(DnType::CommonName, "kube-sim");
    srv.is_ca = IsCa::ExplicitNoCa;
    srv.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    srv.use_authority_key_identifier_extension = true;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let srv_cert = srv
        .signed_by(&srv_key, &issuer)
        .context("signing the server certificate")?;
    Ok(Certs {
        ca_pem: ca_cert.pem(),
        chain: vec![srv_cert.der().clone(), ca_cert.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(srv_key.serialize_der().into()),
    })
}

fn kubeconfig_yaml(server: &str, ca_pem: Option<&str>, token: Option<&str>) -> String {
    let mut cluster = format!("    server: {server}\n");
    if let Some(ca) = ca_pem {
        cluster.push_str(&format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(ca)
        ));
    }
    let user = match token {
        Some(t) => format!("    token: {t}\n"),
        None => "    {}\n".to_string(),
    };
    let user = if token.is_some() {
        format!("  user:\n{user}")
    } else {
        "  user: {}\n".to_string()
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n{cluster}users:\n- name: kube-sim\n{user}contexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim\n    namespace: default\ncurrent-context: kube-sim\n"
    )
}

/// Write a file atomically (temporary sibling + rename).
fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    std::fs::write(tmp.path(), contents)
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming the kubeconfig into {}", path.display()))?;
    Ok(())
}

impl KubeSim {
    /// Bind, write the kubeconfig and start serving.
    ///
    /// # Errors
    /// Binding the address, generating TLS material or writing the kubeconfig failed.
    pub async fn start(opts: SimOptions) -> anyhow::Result<KubeSim> {
        let store = Store::new(
            opts.history_limit,
            opts.set_certificaterequest_username,
            opts.watch_buffer,
        );
        let certs: Arc<dyn sim::store::Admission> = Arc::new(sim::certificates::Certificates {
            release: opts.kubernetes_release,
        });
        let _ = store.admission.set(certs.clone());
        sim::release::register(
            &store,
            opts.kubernetes_release,
            opts.certificates_v1beta1,
            opts.pod_certificate_requests,
            opts.cluster_trust_bundles,
            certs,
        );
        let mut users = opts.token_users.clone();
        if let Some(f) = &opts.token_auth_file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading the token file {}", f.display()))?;
            users.extend(
                TokenUser::parse_csv(&text)
                    .with_context(|| format!("parsing the token file {}", f.display()))?,
            );
        }
        let auth_on = opts.authenticate || opts.token_auth_file.is_some() || !users.is_empty();
        let auth = Arc::new(sim::auth::Authn::new(auth_on, &users, &opts.tokens));
        let faults = Faults::new(store.clone());
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding {}", opts.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let server = Arc::new(Server {
            store,
            counters: Counters::default(),
            faults,
            auth: auth.clone(),
            recorder: sim::rbac::Recorder::default(),
            decisions: sim::rbac::Decisions::default(),
            release: opts.kubernetes_release,
            bookmark_interval: opts.bookmark_interval,
            address: addr.to_string(),
            writes: sim::tap::WriteTap::new(opts.record_writes),
        });
        let (acceptor, ca_pem) = if opts.tls {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let certs = make_certs()?;
            let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs.chain, certs.key)
            .context("building the TLS server configuration")?;
            cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            (
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))),
                Some(certs.ca_pem),
            )
        } else {
            (None, None)
        };
        let (dir, kubeconfig) = match &opts.kubeconfig {
            Some(p) => (None, p.clone()),
            None => {
                let d = tempfile::tempdir().context("creating the kube-sim temporary directory")?;
                let p = d.path().join("kubeconfig");
                (Some(d), p)
            }
        };
        let scheme = if opts.tls { "https" } else { "http" };
        let base = format!("{scheme}://{addr}");
        write_atomic(
            &kubeconfig,
            &kubeconfig_yaml(
                &base,
                ca_pem.as_deref(),
                auth.admin_token
                    .as_deref()
                    .or(opts.tokens.first().map(|t| t.0.as_str())),
            ),
        )?;
        let (shutdown, _) = tokio::sync::watch::channel(false);
        tokio::spawn(accept_loop(
            listener,
            acceptor,
            server.clone(),
            shutdown.subscribe(),
        ));
        Ok(KubeSim {
            addr,
            tls: opts.tls,
            server,
            kubeconfig,
            ca_pem,
            tokens: opts.tokens,
            shutdown,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The kubeconfig file (cluster `kube-sim`, namespace `default`, the first token if any).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube-rs `Config` from the kubeconfig.
    ///
    /// # Errors
    /// The kubeconfig could not be read or understood.
    pub async fn kube_config(&self) -> anyhow::Result<kube::Config> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .context("reading the kube-sim kubeconfig")?;
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .context("loading the kube-sim kubeconfig")
    }

    /// A kube-rs client for this server (as the first token's user when tokens are configured).
    ///
    /// # Errors
    /// The client could not be built.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let cfg = self.kube_config().await?;
        kube::Client::try_from(cfg).context("building the kube client")
    }

    /// A kube-rs client authenticating with `token` (one of [`SimOptions::tokens`]).
    ///
    /// # Errors
    /// The client could not be built.
    pub async fn client_with_token(&self, token: &str) -> anyhow::Result<kube::Client> {
        let mut cfg = self.kube_config().await?;
        cfg.auth_info.token = Some(token.to_string().into());
        kube::Client::try_from(cfg).context("building the kube client")
    }

    /// The configured legacy tokens.
    pub fn tokens(&self) -> &[(String, String)] {
        &self.tokens
    }

    /// The admin's bearer token (`system:masters`, in the kubeconfig) when authentication is on.
    pub fn admin_token(&self) -> Option<&str> {
        self.server.auth.admin_token.as_deref()
    }

    /// The emulated Kubernetes release.
    pub fn kubernetes_release(&self) -> Release {
        self.server.release
    }

    /// Mint a token for ServiceAccount `namespace/name`, creating the ServiceAccount when missing
    /// (the namespace must exist); valid until the ServiceAccount is deleted.
    ///
    /// # Errors
    /// The namespace does not exist or the name is invalid.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> anyhow::Result<String> {
        let store = &self.server.store;
        let def = store
            .lookup("", "v1", "serviceaccounts")
            .context("serviceaccounts are always served")?;
        if store.get_value(&def, namespace, name).is_none() {
            store
                .create(
                    &def,
                    namespace,
                    serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}),
                    &WriteOpts::default(),
                )
                .map_err(|e| anyhow::anyhow!("creating ServiceAccount {namespace}/{name}: {e}"))?;
        }
        self.server
            .auth
            .mint_sa_token(store, namespace, name, None)
            .map(|(t, _)| t)
            .map_err(|e| anyhow::anyhow!("minting a token for {namespace}/{name}: {e}"))
    }

    /// A bearer token for `user` in `groups` (plus `system:authenticated`), as a line of the
    /// token file would give; RBAC applies to it (unless a group is `system:masters`).
    pub fn token_for(&self, user: &str, groups: &[&str]) -> String {
        let mut g: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !g.iter().any(|x| x == "system:authenticated") {
            g.push("system:authenticated".into());
        }
        self.server.auth.mint(sim::auth::Identity {
            user: user.into(),
            uid: String::new(),
            groups: g,
            extra: Default::default(),
            unrestricted: false,
        })
    }

    /// A kube-rs client without credentials (`system:anonymous` when authentication is on).
    ///
    /// # Errors
    /// The client could not be built.
    pub async fn anonymous_client(&self) -> anyhow::Result<kube::Client> {
        let mut cfg = self.kube_config().await?;
        cfg.auth_info.token = None;
        kube::Client::try_from(cfg).context("building the kube client")
    }

    /// Every `(group, resource, subresource, verb)` user `user` used so far and was allowed
    /// (recorded when authentication is on).
    pub fn calls_by(&self, user: &str) -> std::collections::BTreeSet<Call> {
        self.server.recorder.calls(user).0
    }

    /// Every `(group, resource, subresource, verb)` refused to `user` with 403 so far.
    pub fn refused_calls_by(&self, user: &str) -> std::collections::BTreeSet<Call> {
        self.server.recorder.calls(user).1
    }

    /// Forget the recorded calls.
    pub fn clear_calls(&self) {
        self.server.recorder.clear();
    }

    /// Create or replace an object straight in storage (not counted, no admission): `group` ""
    /// for core, `namespace` "" for cluster-scoped, absent means `default` for namespaced kinds.
    /// Returns the stored object.
    ///
    /// # Errors
    /// The kind is not served or the object is invalid.
    pub fn put_object(&self, obj: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let av = obj
            .get("apiVersion")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string();
        let kind = obj
            .get("kind")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string();
        let (group, _) = av.rsplit_once('/').unwrap_or(("", &av));
        let store = &self.server.store;
        let def = store
            .lookup_kind(group, &kind)
            .with_context(|| format!("kind {kind} of {av} is not served"))?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(|x| x.as_str())
            .unwrap_or(if def.namespaced { "default" } else { "" })
            .to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string();
        let out = if let Some(current) = store.get_value(&def, &ns, &name) {
            // A replace names the version it replaces (custom resources require it).
            let mut obj = obj;
            obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            store.update(&def, &ns, &name, false, obj, &WriteOpts::default())
        } else {
            store.create(&def, &ns, obj, &WriteOpts::default())
        }
        .map_err(|e| anyhow::anyhow!("storing {kind} {name}: {e}"))?;
        serde_json::from_slice(&out.body).context("the stored object is JSON")
    }

    /// Install cert-manager's CertificateRequest CRD as cert-manager v1.21.1 publishes it (the
    /// hand transcription in `tests/upstream-crds/`), as installing cert-manager would: what a
    /// controller writes to CertificateRequests is then judged by upstream's schema, never by the
    /// project's own Rust mirror of the type.
    ///
    /// # Errors
    /// As [`KubeSim::install_crds_yaml`].
    pub async fn install_cert_manager_crds(&self) -> anyhow::Result<()> {
        self.install_crds_yaml(CERT_MANAGER_CERTIFICATE_REQUEST_CRD)
            .await
    }

    /// Create (or replace) every object of a multi-document YAML; CRDs are served when this returns.
    ///
    /// # Errors
    /// A document does not parse, names an unknown kind, or is rejected (the Status message is included).
    pub async fn install_crds_yaml(&self, yaml: &str) -> anyhow::Result<()> {
        let store = &self.server.store;
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple_with_options(yaml, sim::field_validation::yaml_options())
                .context("parsing a YAML document")?;
        for v in docs {
            if v.is_null() {
                continue;
            }
            let kind = v.get("kind").and_then(|x| x.as_str()).unwrap_or_default();
            let name = v
                .pointer("/metadata/name")
                .and_then(|x| x.as_str())
                .unwrap_or_default();
            self.put_object(v.clone())?;
            if kind == "CustomResourceDefinition" {
                let g = v
                    .pointer("/spec/group")
                    .and_then(|x| x.as_str())
                    .unwrap_or_default();
                let plural = v
                    .pointer("/spec/names/plural")
                    .and_then(|x| x.as_str())
                    .unwrap_or_default();
                let served = v
                    .pointer("/spec/versions")
                    .and_then(|x| x.as_array())
                    .cloned()
                    .unwrap_or_default();
                for ver in served
                    .iter()
                    .filter_map(|x| x.get("name").and_then(|n| n.as_str()))
                {
                    anyhow::ensure!(
                        store.lookup(g, ver, plural).is_some(),
                        "CRD {name} was stored but {plural}.{g}/{ver} is not served"
                    );
                }
            }
        }
        Ok(())
    }

    /// A namespace, created if missing (no API call is counted).
    ///
    /// # Errors
    /// The name is invalid.
    pub fn ensure_namespace(&self, name: &str) -> anyhow::Result<()> {
        let store = &self.server.store;
        let def = store
            .lookup("", "v1", "namespaces")
            .context("namespaces are always served")?;
        if store.get_value(&def, "", name).is_none() {
            store
                .create(&def, "", serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}), &WriteOpts::default())
                .map_err(|e| anyhow::anyhow!("creating namespace {name}: {e}"))?;
        }
        Ok(())
    }

    /// Read an object straight from storage, bypassing HTTP (not counted): `group` "" for core,
    /// `namespace` "" for cluster-scoped.
    pub fn object(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<serde_json::Value> {
        let store = &self.server.store;
        let def = {
            let reg = store.registry.read();
            reg.gvs
                .iter()
                .filter(|((g, _), _)| g == group)
                .find_map(|(_, m)| m.get(plural).cloned())
        }?;
        // The stored serialization: the object with its managedFields.
        store.get_stored(&def, namespace, name)
    }

    /// Field ownership of one object (its `metadata.managedFields`), read straight from storage
    /// (not counted): one entry per manager (`Apply` or `Update`, with its apiVersion and
    /// subresource), its owned fields rendered the way structured-merge-diff prints paths
    /// (`.status.conditions[type="Ready"].status`), sorted. `None` when the object does not exist.
    pub fn apply_owners(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Vec<ApplyOwner>> {
        let store = &self.server.store;
        let def = {
            let reg = store.registry.read();
            reg.gvs
                .iter()
                .filter(|((g, _), _)| g == group)
                .find_map(|(_, m)| m.get(plural).cloned())
        }?;
        let ns = if def.namespaced { namespace } else { "" };
        let inner = def.coll.inner.read();
        let stored = inner.objects.get(&(ns.to_string(), name.to_string()))?;
        Some(
            stored
                .managers
                .entries
                .iter()
                .map(sim::apply::owner)
                .collect(),
        )
    }

    /// Stops serving `group`/`version` from now on, as an API server restarted with the version
    /// disabled (`--runtime-config=<group>/<version>=false`) would: its discovery, routes and new
    /// watches answer 404; objects stay stored for the other versions. Open watches are not
    /// ended: [`Faults::drop_watches`] does that. Returns whether the version was served.
    pub fn stop_serving(&self, group: &str, version: &str) -> bool {
        let mut reg = self.server.store.registry.write();
        if reg
            .gvs
            .remove(&(group.to_string(), version.to_string()))
            .is_none()
        {
            return false;
        }
        if reg.preferred.get(group).map(String::as_str) == Some(version) {
            let other = reg
                .gvs
                .keys()
                .find(|(g, _)| g == group)
                .map(|(_, v)| v.clone());
            match other {
                Some(v) => {
                    reg.preferred.insert(group.to_string(), v);
                }
                None => {
                    reg.preferred.remove(group);
                }
            }
        }
        true
    }

    /// Number of objects stored for a resource (not counted).
    pub fn object_count(&self, group: &str, plural: &str) -> usize {
        let reg = self.server.store.registry.read();
        reg.gvs
            .iter()
            .filter(|((g, _), _)| g == group)
            .find_map(|(_, m)| m.get(plural).map(|d| d.coll.inner.read().objects.len()))
            .unwrap_or(0)
    }

    /// Fault injection handle.
    pub fn faults(&self) -> Faults {
        self.server.faults.clone()
    }

    /// API calls served so far for `verb` (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`) on `resource`: a plural such as `certificaterequests` counts
    /// every call on the resource including its subresources; `certificaterequests/status` counts
    /// only that subresource.
    pub fn request_count(&self, verb: &str, resource: &str) -> u64 {
        self.server.counters.get(verb, resource)
    }

    /// Writes (create + update + patch + delete) on `resource`, same naming as [`KubeSim::request_count`].
    pub fn write_count(&self, resource: &str) -> u64 {
        ["create", "update", "patch", "delete", "deletecollection"]
            .iter()
            .map(|v| self.request_count(v, resource))
            .sum()
    }

    /// Every counter, as ((verb, resource), count).
    pub fn request_counts(&self) -> Vec<((String, String), u64)> {
        self.server.counters.snapshot().into_iter().collect()
    }

    /// Every create, update and patch request received so far, bodies as sent (empty unless
    /// [`SimOptions::record_writes`] is set).
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.server.writes.snapshot()
    }

    /// Watches the server closed because they fell more than [`SimOptions::watch_buffer`]
    /// events behind (their clients re-watch, or re-list after a 410).
    pub fn watches_closed_behind(&self) -> u64 {
        self.server
            .store
            .watches_closed_behind
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.server.store.current_rv()
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    server: Arc<Server>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            // Accept errors (e.g. too many open files) are transient; keep serving.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let tls = tls.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| server.clone().handle(req));
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            match tls {
                Some(acc) => {
                    let Ok(s) = acc.accept(stream).await else {
                        return;
                    };
                    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(s), svc);
                    tokio::select! { _ = conn => {}, _ = stop.changed() => {} }
                }
                None => {
                    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                    tokio::select! { _ = conn => {}, _ = stop.changed() => {} }
                }
            }
        });
    }
}

/// Poll `f` every 20 ms until it returns true.
///
/// # Errors
/// `timeout` elapsed first.
pub async fn wait_for<F, Fut>(timeout: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status of condition `type_` in `obj.status.conditions`, if present.
pub fn condition_status<'a>(obj: &'a serde_json::Value, type_: &str) -> Option<&'a str> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(|t| t.as_str()) == Some(type_))?
        .get("status")?
        .as_str()
}
