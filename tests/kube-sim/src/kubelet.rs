//! A kubelet for tests: acting as `system:node:<node>`, it requests a pod certificate the way
//! kubelet's `podCertificate` projected volume does and writes the credential bundle.
//!
//! ```no_run
//! # async fn f(sim: &kube_sim::KubeSim) -> anyhow::Result<()> {
//! use kube_sim::kubelet::{KeyType, PodCertificate};
//! let kubelet = sim.kubelet("node-1").await?;
//! let pc = PodCertificate::new("example.com/signer", KeyType::EcdsaP256);
//! let out = kubelet.request("default", "my-pod", &pc, std::time::Duration::from_secs(10)).await?;
//! if let kube_sim::kubelet::Outcome::Issued { credential_bundle, .. } = &out {
//!     std::fs::write("/tmp/bundle.pem", credential_bundle)?;
//! }
//! # Ok(()) }
//! ```

use crate::{KubeSim, Release};
use anyhow::Context as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// The key types of `podCertificate.keyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// `RSA3072`
    Rsa3072,
    /// `RSA4096`
    Rsa4096,
    /// `ECDSAP256`
    EcdsaP256,
    /// `ECDSAP384`
    EcdsaP384,
    /// `ECDSAP521`
    EcdsaP521,
    /// `ED25519`
    Ed25519,
}

impl KeyType {
    /// Parse the API spelling (`ECDSAP256`, …).
    ///
    /// # Errors
    /// An unknown key type, named.
    pub fn parse(s: &str) -> anyhow::Result<KeyType> {
        Ok(match s {
            "RSA3072" => KeyType::Rsa3072,
            "RSA4096" => KeyType::Rsa4096,
            "ECDSAP256" => KeyType::EcdsaP256,
            "ECDSAP384" => KeyType::EcdsaP384,
            "ECDSAP521" => KeyType::EcdsaP521,
            "ED25519" => KeyType::Ed25519,
            other => anyhow::bail!(
                "unknown key type {other:?} (RSA3072, RSA4096, ECDSAP256, ECDSAP384, ECDSAP521, ED25519)"
            ),
        })
    }
}

/// One `podCertificate` projected volume source.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PodCertificate {
    /// `signerName`.
    pub signer_name: String,
    /// `keyType`.
    pub key_type: KeyType,
    /// `maxExpirationSeconds` (copied verbatim; the server defaults it).
    pub max_expiration_seconds: Option<i32>,
    /// `userAnnotations` (copied to `spec.unverifiedUserAnnotations`).
    pub user_annotations: BTreeMap<String, String>,
}

impl PodCertificate {
    /// A source for `signer` with key type `key_type`.
    pub fn new(signer: &str, key_type: KeyType) -> Self {
        PodCertificate {
            signer_name: signer.into(),
            key_type,
            max_expiration_seconds: None,
            user_annotations: BTreeMap::new(),
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Issued: the request as stored, the PKCS#8 key PEM and the credential bundle (key, then chain).
    Issued {
        /// The PodCertificateRequest.
        request: Value,
        /// `-----BEGIN PRIVATE KEY-----` (PKCS#8).
        key_pem: String,
        /// The key, then every certificate of `status.certificateChain` (headers and
        /// inter-block text dropped), as the projected volume's `credentialBundlePath`.
        credential_bundle: String,
    },
    /// Denied (reason, message).
    Denied {
        /// The PodCertificateRequest.
        request: Value,
        /// Condition reason.
        reason: String,
        /// Condition message.
        message: String,
    },
    /// Failed (reason, message).
    Failed {
        /// The PodCertificateRequest.
        request: Value,
        /// Condition reason.
        reason: String,
        /// Condition message.
        message: String,
    },
}

/// A node agent bound to one kube-sim.
#[derive(Clone)]
pub struct Kubelet {
    node: String,
    client: kube::Client,
    release: Release,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("node", &self.node)
            .field("release", &self.release)
            .finish_non_exhaustive()
    }
}

struct Key {
    pkcs8: Vec<u8>,
    spki: Vec<u8>,
    stub: Vec<u8>,
}

fn generate(kt: KeyType) -> anyhow::Result<Key> {
    use rcgen::{KeyPair, RsaKeySize};
    let kp = match kt {
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::EcdsaP521 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512),
        KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
    }
    .context("generating the key")?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let stub = params
        .serialize_request(&kp)
        .context("building the stub PKCS#10 request")?;
    // kubelet (Go's MarshalPKCS8PrivateKey) writes PKCS#8 v1, which every OpenSSL reads.
    let pkcs8 = if kt == KeyType::Ed25519 {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&kp.serialize_der())
            .map_err(|e| anyhow::anyhow!("reading the Ed25519 key: {e}"))?
            .to_pkcs8v1()
            .map_err(|e| anyhow::anyhow!("re-encoding the Ed25519 key: {e}"))?
            .as_ref()
            .to_vec()
    } else {
        kp.serialize_der()
    };
    Ok(Key {
        pkcs8,
        spki: rcgen::PublicKeyData::subject_public_key_info(&kp),
        stub: stub.der().to_vec(),
    })
}

/// Proof of possession as kubelet computes it: ECDSA/RSA-PSS over sha256(podUID), Ed25519 over podUID.
fn proof_of_possession(kt: KeyType, pkcs8: &[u8], pod_uid: &str) -> anyhow::Result<Vec<u8>> {
    let rng = SystemRandom::new();
    let msg = pod_uid.as_bytes();
    let ecdsa = |alg: &'static signature::EcdsaSigningAlgorithm| -> anyhow::Result<Vec<u8>> {
        let k = EcdsaKeyPair::from_pkcs8(alg, pkcs8)
            .map_err(|e| anyhow::anyhow!("loading the key: {e}"))?;
        Ok(k.sign(&rng, msg)
            .map_err(|e| anyhow::anyhow!("signing: {e}"))?
            .as_ref()
            .to_vec())
    };
    match kt {
        KeyType::EcdsaP256 => ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        KeyType::EcdsaP384 => anyhow::bail!(
            "kube-sim's kubelet cannot compute a P-384 proof of possession (aws-lc-rs signs P-384 only with SHA-384); use another key type on 1.35"
        ),
        KeyType::EcdsaP521 => ecdsa(&signature::ECDSA_P521_SHA256_ASN1_SIGNING),
        KeyType::Ed25519 => {
            let k = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                .map_err(|e| anyhow::anyhow!("loading the key: {e}"))?;
            Ok(k.sign(msg).as_ref().to_vec())
        }
        KeyType::Rsa3072 | KeyType::Rsa4096 => {
            let k = RsaKeyPair::from_pkcs8(pkcs8)
                .map_err(|e| anyhow::anyhow!("loading the key: {e}"))?;
            let mut sig = vec![0u8; k.public_modulus_len()];
            k.sign(&signature::RSA_PSS_SHA256, &rng, msg, &mut sig)
                .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
            Ok(sig)
        }
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

impl KubeSim {
    /// A kubelet for node `node`: the Node object is created when missing, and the kubelet
    /// authenticates as `system:node:<node>` in `system:nodes` (with authentication off every
    /// caller is the admin, so NodeRestriction does not apply).
    ///
    /// # Errors
    /// The Node could not be stored or the client not built.
    pub async fn kubelet(&self, node: &str) -> anyhow::Result<Kubelet> {
        if self.object("", "nodes", "", node).is_none() {
            self.put_object(
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
            )?;
        }
        let token = self.token_for(&format!("system:node:{node}"), &["system:nodes"]);
        let client = self.client_with_token(&token).await?;
        Ok(Kubelet {
            node: node.into(),
            client,
            release: self.kubernetes_release(),
        })
    }
}

impl Kubelet {
    /// The node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The node's kube-rs client (`system:node:<node>`).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let req = http::Request::get(path).body(Vec::new())?;
        self.client
            .request::<Value>(req)
            .await
            .with_context(|| format!("GET {path} as node {}", self.node))
    }

    /// Create the PodCertificateRequest for `namespace/pod` as kubelet does (generated name
    /// `req-`, owner reference to the Pod, stub PKCS#10 on 1.36+, `pkixPublicKey` +
    /// `proofOfPossession` on 1.35); returns the created request and the PKCS#8 key.
    ///
    /// # Errors
    /// The pod, its ServiceAccount or the node cannot be read, or the server refused the request
    /// (the error carries its Status).
    pub async fn create_request(
        &self,
        namespace: &str,
        pod: &str,
        pc: &PodCertificate,
    ) -> anyhow::Result<(Value, Vec<u8>)> {
        let (created, pkcs8, _) = self.create_request_timed(namespace, pod, pc).await?;
        Ok((created, pkcs8))
    }

    /// [`Kubelet::create_request`], also returning when the create was sent (after the reads
    /// and the key generation): the start of "creation → Issued".
    ///
    /// # Errors
    /// As [`Kubelet::create_request`].
    pub async fn create_request_timed(
        &self,
        namespace: &str,
        pod: &str,
        pc: &PodCertificate,
    ) -> anyhow::Result<(Value, Vec<u8>, std::time::Instant)> {
        let p = self
            .get(&format!("/api/v1/namespaces/{namespace}/pods/{pod}"))
            .await?;
        let sa_name = p
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        let sa = self
            .get(&format!(
                "/api/v1/namespaces/{namespace}/serviceaccounts/{sa_name}"
            ))
            .await?;
        let node = self.get(&format!("/api/v1/nodes/{}", self.node)).await?;
        let uid = |v: &Value| {
            v.pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let pod_uid = uid(&p);
        let key = generate(pc.key_type)?;
        let mut spec = json!({
            "signerName": pc.signer_name,
            "podName": pod,
            "podUID": pod_uid,
            "serviceAccountName": sa_name,
            "serviceAccountUID": uid(&sa),
            "nodeName": self.node,
            "nodeUID": uid(&node),
        });
        if let Some(m) = pc.max_expiration_seconds {
            spec["maxExpirationSeconds"] = json!(m);
        }
        if !pc.user_annotations.is_empty() {
            spec["unverifiedUserAnnotations"] = json!(pc.user_annotations);
        }
        if self.release.has_stub() {
            spec["stubPKCS10Request"] = json!(b64(&key.stub));
        } else {
            spec["pkixPublicKey"] = json!(b64(&key.spki));
            spec["proofOfPossession"] = json!(b64(&proof_of_possession(
                pc.key_type,
                &key.pkcs8,
                &pod_uid
            )?));
        }
        let version = if self.release >= Release::V1_37 {
            "v1"
        } else {
            "v1beta1"
        };
        let body = json!({
            "apiVersion": format!("certificates.k8s.io/{version}"),
            "kind": "PodCertificateRequest",
            "metadata": {
                "generateName": "req-",
                "namespace": namespace,
                "ownerReferences": [{"apiVersion": "core/v1", "kind": "Pod", "name": pod, "uid": pod_uid}],
            },
            "spec": spec,
        });
        let path = format!(
            "/apis/certificates.k8s.io/{version}/namespaces/{namespace}/podcertificaterequests"
        );
        let req = http::Request::post(&path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body)?)?;
        let sent = std::time::Instant::now();
        let created = self.client.request::<Value>(req).await.with_context(|| {
            format!(
                "creating a PodCertificateRequest for {namespace}/{pod} as node {}",
                self.node
            )
        })?;
        Ok((created, key.pkcs8, sent))
    }

    /// Create the request, wait up to `timeout` for Issued, Denied or Failed, and build the
    /// credential bundle when issued.
    ///
    /// # Errors
    /// Creating failed, or no terminal condition within `timeout`.
    pub async fn request(
        &self,
        namespace: &str,
        pod: &str,
        pc: &PodCertificate,
        timeout: Duration,
    ) -> anyhow::Result<Outcome> {
        let (created, pkcs8) = self.create_request(namespace, pod, pc).await?;
        let name = created
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let version = created
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("certificates.k8s.io/v1")
            .to_string();
        let path = format!("/apis/{version}/namespaces/{namespace}/podcertificaterequests/{name}");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let cur = self.get(&path).await?;
            let cond = cur
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter().find(|c| {
                        matches!(
                            c.get("type").and_then(Value::as_str),
                            Some("Issued" | "Denied" | "Failed")
                        )
                    })
                })
                .cloned();
            if let Some(c) = cond {
                let s = |k: &str| {
                    c.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                return Ok(match s("type").as_str() {
                    "Issued" => {
                        let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.clone()));
                        let chain = cur
                            .pointer("/status/certificateChain")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let mut bundle = key_pem.clone();
                        for b in pem::parse_many(chain).context("the issued chain is not PEM")? {
                            bundle.push_str(&pem::encode(&pem::Pem::new(
                                "CERTIFICATE",
                                b.contents().to_vec(),
                            )));
                        }
                        Outcome::Issued {
                            request: cur,
                            key_pem,
                            credential_bundle: bundle,
                        }
                    }
                    "Denied" => Outcome::Denied {
                        reason: s("reason"),
                        message: s("message"),
                        request: cur,
                    },
                    _ => Outcome::Failed {
                        reason: s("reason"),
                        message: s("message"),
                        request: cur,
                    },
                });
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "PodCertificateRequest {namespace}/{name} has no Issued, Denied or Failed condition after {timeout:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// [`Kubelet::request`], then write the credential bundle to `path` atomically when issued.
    ///
    /// # Errors
    /// As [`Kubelet::request`], or the file could not be written.
    pub async fn project(
        &self,
        namespace: &str,
        pod: &str,
        pc: &PodCertificate,
        timeout: Duration,
        path: &std::path::Path,
    ) -> anyhow::Result<Outcome> {
        let out = self.request(namespace, pod, pc, timeout).await?;
        if let Outcome::Issued {
            credential_bundle, ..
        } = &out
        {
            crate::write_atomic(path, credential_bundle)?;
        }
        Ok(out)
    }
}
