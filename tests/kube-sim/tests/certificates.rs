//! The `certificates.k8s.io` built-ins, judged by kube-rs (typed k8s-openapi 1.37 objects), the
//! real kubectl and openssl: CertificateSigningRequest, PodCertificateRequest (with the kubelet
//! helper and NodeRestriction), ClusterTrustBundle, releases and conversion, metadata-only watch.

mod common;

use base64::Engine as _;
use futures::StreamExt as _;
use k8s_openapi::api::certificates::v1::{ClusterTrustBundle, PodCertificateRequest};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube_sim::kubelet::{KeyType, Outcome, PodCertificate};
use kube_sim::{KubeSim, Release, SimOptions};
use serde_json::{Value, json};
use std::time::Duration;

const SIGNER: &str = "example.com/signer";
const WAIT: Duration = Duration::from_secs(20);

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn status_of(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn sim(release: Release, v1beta1: bool) -> KubeSim {
    let mut opts = SimOptions::default();
    // kubectl sends bearer tokens only over TLS.
    opts.tls = true;
    opts.authenticate = true;
    opts.kubernetes_release = release;
    opts.certificates_v1beta1 = v1beta1;
    KubeSim::start(opts).await.unwrap()
}

fn bind(sim: &KubeSim, name: &str, user: &str, rules: Value) {
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})).unwrap();
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}, "subjects": [{"kind": "User", "name": user}]})).unwrap();
}

/// A pod `name` on `node` running as ServiceAccount `sa` with a podCertificate volume for `signer`.
fn pod(sim: &KubeSim, name: &str, node: &str, sa: &str, signer: &str, mirror: bool) -> Value {
    if sim.object("", "serviceaccounts", "default", sa).is_none() {
        sim.put_object(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": "default"}})).unwrap();
    }
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": {
        "nodeName": node, "serviceAccountName": sa,
        "containers": [{"name": "c", "image": "x"}],
        "volumes": [{"name": "certs", "projected": {"sources": [{"podCertificate": {"signerName": signer, "keyType": "ECDSAP256", "credentialBundlePath": "bundle.pem"}}]}}]}});
    if mirror {
        p["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
    }
    sim.put_object(p).unwrap()
}

fn uid(v: &Value) -> String {
    v["metadata"]["uid"].as_str().unwrap().to_string()
}

struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn ca() -> Ca {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    Ca {
        issuer: rcgen::Issuer::new(p, key),
    }
}

/// What a signer writes; the knobs break one rule at a time.
struct Issue {
    back: i64,
    lifetime: i64,
    refresh_after: i64,
    status_nb_shift: i64,
    other_key: bool,
    /// A URI SAN on the leaf.
    uri: Option<&'static str>,
}

impl Default for Issue {
    fn default() -> Self {
        Issue {
            back: 60,
            lifetime: 7200,
            refresh_after: 3600,
            status_nb_shift: 0,
            other_key: false,
            uri: None,
        }
    }
}

fn t(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The status an issuing signer writes for `pcr` (raw JSON of the stored object).
fn issued_status(ca: &Ca, pcr: &Value, i: &Issue) -> Value {
    let stub = base64::engine::general_purpose::STANDARD
        .decode(pcr["spec"]["stubPKCS10Request"].as_str().unwrap())
        .unwrap();
    let csr = rcgen::CertificateSigningRequestParams::from_der(&stub.into()).unwrap();
    let now = jiff::Timestamp::now().as_second();
    let nb = now - i.back;
    let na = nb + i.lifetime;
    let mut p = rcgen::CertificateParams::new(vec!["svc.example.com".to_string()]).unwrap();
    p.not_before = time::OffsetDateTime::from_unix_timestamp(nb).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(na).unwrap();
    if let Some(uri) = i.uri {
        p.subject_alt_names
            .push(rcgen::SanType::URI(uri.try_into().unwrap()));
    }
    let leaf = if i.other_key {
        p.signed_by(&rcgen::KeyPair::generate().unwrap(), &ca.issuer)
            .unwrap()
    } else {
        p.signed_by(&csr.public_key, &ca.issuer).unwrap()
    };
    json!({
        "conditions": [{"type": "Issued", "status": "True", "reason": "Signed", "message": "ok", "lastTransitionTime": t(now)}],
        "certificateChain": leaf.pem(),
        "notBefore": t(nb + i.status_nb_shift),
        "notAfter": t(na),
        "beginRefreshAt": t(nb + i.refresh_after),
    })
}

fn pcr_api(client: kube::Client, version: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client,
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("certificates.k8s.io", version, "PodCertificateRequest"),
            "podcertificaterequests",
        ),
    )
}

async fn write_status(
    api: &Api<DynamicObject>,
    name: &str,
    status: Value,
) -> Result<DynamicObject, kube::Error> {
    let mut cur = api.get(name).await.unwrap();
    cur.data["status"] = status;
    api.replace_status(name, &PostParams::default(), &cur).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_gets_a_pod_certificate_issued_under_every_status_rule() {
    let sim = sim(Release::V1_37, false).await;
    let p = pod(&sim, "p1", "node-1", "app", SIGNER, false);
    let kubelet = sim.kubelet("node-1").await.unwrap();
    let signer = sim
        .client_with_token(&sim.token_for("signer", &[]))
        .await
        .unwrap();
    bind(
        &sim,
        "signer",
        "signer",
        json!([
            {"apiGroups": ["certificates.k8s.io"], "resources": ["podcertificaterequests"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["certificates.k8s.io"], "resources": ["podcertificaterequests/status"], "verbs": ["update", "patch"]},
            {"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["example.com/*"], "verbs": ["sign"]}
        ]),
    );
    let no_sign = sim
        .client_with_token(&sim.token_for("status-writer", &[]))
        .await
        .unwrap();
    bind(
        &sim,
        "status-writer",
        "status-writer",
        json!([
            {"apiGroups": ["certificates.k8s.io"], "resources": ["podcertificaterequests", "podcertificaterequests/status"], "verbs": ["get", "update"]}
        ]),
    );
    let mut pc = PodCertificate::new(SIGNER, KeyType::EcdsaP256);
    pc.max_expiration_seconds = Some(3 * 3600);
    pc.user_annotations
        .insert("example.com/team".into(), "a".into());
    let (created, _) = kubelet.create_request("default", "p1", &pc).await.unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("req-"), "{name}");
    assert_eq!(
        created["metadata"]["ownerReferences"][0]["uid"],
        p["metadata"]["uid"]
    );
    assert_eq!(
        created["spec"]["nodeUID"].as_str().unwrap(),
        uid(&sim.object("", "nodes", "", "node-1").unwrap())
    );
    assert_eq!(created["spec"]["maxExpirationSeconds"], 3 * 3600);
    assert!(created["spec"].get("pkixPublicKey").is_none());
    // The typed 1.37 client reads what kubelet created.
    let typed: Api<PodCertificateRequest> = Api::namespaced(signer.clone(), "default");
    let got = typed.get(&name).await.unwrap();
    assert_eq!(
        got.spec.unverified_user_annotations.unwrap()["example.com/team"],
        "a"
    );

    let ca = ca();
    let api = pcr_api(signer.clone(), "v1");
    let stored = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
    let refused = |st: Value| {
        let api = api.clone();
        let name = name.clone();
        async move { status_of(write_status(&api, &name, st).await.unwrap_err()) }
    };
    let expect_invalid = |s: kube::core::Status, needle: &str| {
        assert_eq!(s.code, 422, "{s:?}");
        assert!(
            s.message.contains(needle),
            "{needle:?} not in {}",
            s.message
        );
    };
    expect_invalid(
        refused(issued_status(
            &ca,
            &stored,
            &Issue {
                other_key: true,
                ..Issue::default()
            },
        ))
        .await,
        "not the requested public key",
    );
    expect_invalid(
        refused(issued_status(
            &ca,
            &stored,
            &Issue {
                status_nb_shift: 1,
                ..Issue::default()
            },
        ))
        .await,
        "status.notBefore",
    );
    expect_invalid(
        refused(issued_status(
            &ca,
            &stored,
            &Issue {
                back: 600,
                ..Issue::default()
            },
        ))
        .await,
        "within 5 minutes",
    );
    expect_invalid(
        refused(issued_status(
            &ca,
            &stored,
            &Issue {
                lifetime: 1800,
                refresh_after: 900,
                ..Issue::default()
            },
        ))
        .await,
        "shorter than 1 hour",
    );
    expect_invalid(
        refused(issued_status(
            &ca,
            &stored,
            &Issue {
                lifetime: 4 * 3600,
                ..Issue::default()
            },
        ))
        .await,
        "longer than spec.maxExpirationSeconds",
    );
    expect_invalid(
        refused(issued_status(
            &ca,
            &stored,
            &Issue {
                refresh_after: 300,
                ..Issue::default()
            },
        ))
        .await,
        "status.beginRefreshAt",
    );
    expect_invalid(
        refused(issued_status(
            &ca,
            &stored,
            &Issue {
                refresh_after: 7200 - 300,
                ..Issue::default()
            },
        ))
        .await,
        "status.beginRefreshAt",
    );
    let mut ready = issued_status(&ca, &stored, &Issue::default());
    ready["conditions"][0]["type"] = json!("Ready");
    expect_invalid(refused(ready).await, "Unsupported value: \"Ready\"");
    let mut two = issued_status(&ca, &stored, &Issue::default());
    two["conditions"].as_array_mut().unwrap().push(json!({"type": "Failed", "status": "True", "reason": "X", "message": "", "lastTransitionTime": t(0)}));
    expect_invalid(refused(two).await, "at most one");
    let mut denied = issued_status(&ca, &stored, &Issue::default());
    denied["conditions"][0]["type"] = json!("Denied");
    expect_invalid(
        refused(denied).await,
        "must be empty when the request is Denied or Failed",
    );
    let mut bad_reason = issued_status(&ca, &stored, &Issue::default());
    bad_reason["conditions"][0]["reason"] = json!("not camel");
    expect_invalid(refused(bad_reason).await, "reason");
    let mut no_time = issued_status(&ca, &stored, &Issue::default());
    no_time["beginRefreshAt"] = Value::Null;
    expect_invalid(refused(no_time).await, "status.beginRefreshAt: Required");
    expect_invalid(
        refused(json!({"notBefore": t(0)})).await,
        "status is immutable unless transitioning",
    );
    // kube-apiserver's timeNear is an open interval: exactly 5 minutes back is refused (the
    // server's clock only moves further away from the leaf's whole-second notBefore).
    expect_invalid(
        refused(issued_status(
            &ca,
            &stored,
            &Issue {
                back: 300,
                ..Issue::default()
            },
        ))
        .await,
        "within 5 minutes",
    );
    // Go's x509 parser refuses a URI SAN whose host is not a valid domain (x509-parser reads it).
    expect_invalid(
        refused(issued_status(
            &ca,
            &stored,
            &Issue {
                uri: Some("spiffe://td..example/x"),
                ..Issue::default()
            },
        ))
        .await,
        "invalid domain",
    );
    // RBAC on the status subresource is not enough: `sign` on the signer is needed. The status
    // strategy checks it once the status validates, as an invalid signerName (422).
    let no_sign_api = pcr_api(no_sign.clone(), "v1");
    let s = status_of(
        write_status(
            &no_sign_api,
            &name,
            issued_status(&ca, &stored, &Issue::default()),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    assert!(
        s.message.contains(
            r#"spec.signerName: Forbidden: User "status-writer" is not permitted to "sign" for signer "example.com/signer""#
        ),
        "{}",
        s.message
    );
    // An invalid status gets its validation errors first.
    let s = status_of(
        write_status(&no_sign_api, &name, json!({"notBefore": t(0)}))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 422, "{s:?}");
    assert!(
        s.message
            .contains("status is immutable unless transitioning")
            && !s.message.contains("sign"),
        "{}",
        s.message
    );
    // The spec is immutable.
    let mut cur = api.get(&name).await.unwrap();
    cur.data["spec"]["podName"] = json!("other");
    let s = status_of(
        pcr_api(sim.client().await.unwrap(), "v1")
            .replace(&name, &PostParams::default(), &cur)
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 422, "{s:?}");

    // The kubelet waits while a real signer issues; the bundle is the key, then the chain.
    let k = kubelet.clone();
    let dir = tempfile::tempdir().unwrap();
    let bundle_path = dir.path().join("bundle.pem");
    let bp = bundle_path.clone();
    let pc2 = PodCertificate::new(SIGNER, KeyType::Ed25519);
    let waiting = tokio::spawn(async move { k.project("default", "p1", &pc2, WAIT, &bp).await });
    let fresh = kube_sim::wait_for(WAIT, || async {
        api.list(&ListParams::default().fields("spec.podName=p1"))
            .await
            .unwrap()
            .items
            .len()
            == 2
    })
    .await;
    fresh.unwrap();
    let second = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|o| o.metadata.name.as_deref() != Some(name.as_str()))
        .unwrap();
    let second_name = second.metadata.name.clone().unwrap();
    let stored2 = serde_json::to_value(&second).unwrap();
    write_status(
        &api,
        &second_name,
        issued_status(&ca, &stored2, &Issue::default()),
    )
    .await
    .unwrap();
    let out = waiting.await.unwrap().unwrap();
    assert!(matches!(out, Outcome::Issued { .. }), "{out:?}");
    // Terminal conditions are final.
    let mut again = issued_status(&ca, &stored2, &Issue::default());
    again["conditions"][0]["reason"] = json!("Again");
    let s = status_of(write_status(&api, &second_name, again).await.unwrap_err());
    assert!(
        s.message
            .contains("immutable once the request has a Issued condition"),
        "{}",
        s.message
    );
    // openssl: the bundle's key is the key of its first certificate.
    let pubkey = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .arg(&bundle_path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let from_key = pubkey(&["pkey", "-pubout", "-in"]);
    let from_cert = pubkey(&["x509", "-noout", "-pubkey", "-in"]);
    assert_eq!(from_key, from_cert);
    let text = std::fs::read_to_string(&bundle_path).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
    // Deny: the kubelet reports it.
    let k = kubelet.clone();
    let waiting = tokio::spawn(async move {
        k.request(
            "default",
            "p1",
            &PodCertificate::new(SIGNER, KeyType::EcdsaP384),
            WAIT,
        )
        .await
    });
    kube_sim::wait_for(WAIT, || async {
        api.list(&ListParams::default()).await.unwrap().items.len() == 3
    })
    .await
    .unwrap();
    let third = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|o| {
            let n = o.metadata.name.as_deref().unwrap_or_default();
            n != name && n != second_name
        })
        .unwrap();
    write_status(&api, third.metadata.name.as_deref().unwrap(), json!({"conditions": [{"type": "Denied", "status": "True", "reason": "UnsupportedKeyType", "message": "use ECDSAP256", "lastTransitionTime": t(jiff::Timestamp::now().as_second())}]})).await.unwrap();
    match waiting.await.unwrap().unwrap() {
        Outcome::Denied { reason, .. } => assert_eq!(reason, "UnsupportedKeyType"),
        other => panic!("{other:?}"),
    }
    // Field selectors of the contract.
    for (sel, n) in [
        ("spec.signerName=example.com/signer", 3),
        ("spec.signerName=example.com/other", 0),
        ("spec.nodeName=node-1", 3),
        ("spec.podName=p2", 0),
    ] {
        assert_eq!(
            api.list(&ListParams::default().fields(sel))
                .await
                .unwrap()
                .items
                .len(),
            n,
            "{sel}"
        );
    }
    // Other fields are not selectable (kube-apiserver's field label conversion).
    let s = status_of(
        api.list(&ListParams::default().fields("spec.podUID=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 400, "{s:?}");
}

/// The body kubelet would send, for hand-made variations.
fn pcr_body(sim: &KubeSim, pod_name: &str, node: &str, signer: &str) -> Value {
    let p = sim.object("", "pods", "default", pod_name).unwrap();
    let sa = p["spec"]["serviceAccountName"].as_str().unwrap();
    let sa_obj = sim.object("", "serviceaccounts", "default", sa).unwrap();
    let node_uid = sim
        .object("", "nodes", "", node)
        .map(|n| uid(&n))
        .unwrap_or_else(|| "no-node".into());
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let stub = params.serialize_request(&key).unwrap();
    json!({"apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest", "metadata": {"generateName": "req-", "namespace": "default"},
        "spec": {"signerName": signer, "podName": pod_name, "podUID": uid(&p), "serviceAccountName": sa, "serviceAccountUID": uid(&sa_obj),
        "nodeName": node, "nodeUID": node_uid, "stubPKCS10Request": b64(stub.der())}})
}

#[tokio::test]
async fn node_restriction_limits_what_a_node_may_request() {
    let sim = sim(Release::V1_37, false).await;
    pod(&sim, "p1", "node-1", "app", SIGNER, false);
    pod(&sim, "mirror", "node-1", "app", SIGNER, true);
    pod(&sim, "elsewhere", "node-2", "app", SIGNER, false);
    let node1 = sim.kubelet("node-1").await.unwrap();
    sim.kubelet("node-2").await.unwrap();
    let api = pcr_api(node1.client().clone(), "v1");
    let create = |body: Value| {
        let api = api.clone();
        async move {
            api.create(
                &PostParams::default(),
                &serde_json::from_value(body).unwrap(),
            )
            .await
        }
    };
    let forbidden = |r: Result<DynamicObject, kube::Error>, needle: &str| {
        let s = status_of(r.unwrap_err());
        assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"), "{s:?}");
        assert!(
            s.message.contains(needle),
            "{needle:?} not in {}",
            s.message
        );
    };
    create(pcr_body(&sim, "p1", "node-1", SIGNER))
        .await
        .unwrap();
    forbidden(
        create(pcr_body(&sim, "p1", "node-2", SIGNER)).await,
        "naming itself",
    );
    forbidden(
        create(pcr_body(&sim, "elsewhere", "node-1", SIGNER)).await,
        "is not bound to node",
    );
    forbidden(
        create(pcr_body(&sim, "mirror", "node-1", SIGNER)).await,
        "mirror pod",
    );
    let mut b = pcr_body(&sim, "p1", "node-1", SIGNER);
    b["spec"]["serviceAccountUID"] = json!("forged");
    forbidden(create(b).await, "spec.serviceAccountUID");
    let mut b = pcr_body(&sim, "p1", "node-1", SIGNER);
    b["spec"]["serviceAccountName"] = json!("admin");
    forbidden(create(b).await, "is not the service account of pod");
    let mut b = pcr_body(&sim, "p1", "node-1", SIGNER);
    b["spec"]["podUID"] = json!("forged");
    forbidden(create(b).await, "spec.podUID");
    let mut b = pcr_body(&sim, "p1", "node-1", SIGNER);
    b["spec"]["nodeUID"] = json!("forged");
    forbidden(create(b).await, "spec.nodeUID");
    // 1.37: only signers the pod's podCertificate volumes name, unless authorized for
    // request-podcertificate-signer.
    forbidden(
        create(pcr_body(&sim, "p1", "node-1", "example.com/other")).await,
        "no podCertificate projected volume source",
    );
    bind(
        &sim,
        "any-signer",
        "system:node:node-1",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["example.com/*"], "verbs": ["request-podcertificate-signer"]}]),
    );
    create(pcr_body(&sim, "p1", "node-1", "example.com/other"))
        .await
        .unwrap();
    // A node cannot read pods of another node, and is refused other writes by RBAC.
    let pods: Api<Pod> = Api::namespaced(node1.client().clone(), "default");
    assert_eq!(
        status_of(pods.get("elsewhere").await.unwrap_err()).code,
        403
    );
    pods.get("p1").await.unwrap();
    // Other callers are limited by RBAC only: with create they may name any pod.
    let other = sim
        .client_with_token(&sim.token_for("ops", &[]))
        .await
        .unwrap();
    bind(
        &sim,
        "ops",
        "ops",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["podcertificaterequests"], "verbs": ["create"]}]),
    );
    pcr_api(other, "v1")
        .create(
            &PostParams::default(),
            &serde_json::from_value(pcr_body(&sim, "elsewhere", "node-2", "example.com/third"))
                .unwrap(),
        )
        .await
        .unwrap();
    // Validation: the stub's signature is checked, and it must be empty.
    let mut b = pcr_body(&sim, "p1", "node-1", SIGNER);
    let mut stub = base64::engine::general_purpose::STANDARD
        .decode(b["spec"]["stubPKCS10Request"].as_str().unwrap())
        .unwrap();
    let last = stub.len() - 1;
    stub[last] ^= 1;
    b["spec"]["stubPKCS10Request"] = json!(b64(&stub));
    let s = status_of(create(b).await.unwrap_err());
    assert_eq!(s.code, 422);
    assert!(
        s.message.contains("spec.stubPKCS10Request"),
        "{}",
        s.message
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["a.example.com".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "x");
    let mut b = pcr_body(&sim, "p1", "node-1", SIGNER);
    b["spec"]["stubPKCS10Request"] = json!(b64(params.serialize_request(&key).unwrap().der()));
    let s = status_of(create(b).await.unwrap_err());
    assert!(s.message.contains("must be empty"), "{}", s.message);
    let mut b = pcr_body(&sim, "p1", "node-1", SIGNER);
    b["spec"]["maxExpirationSeconds"] = json!(600);
    assert!(
        status_of(create(b).await.unwrap_err())
            .message
            .contains("spec.maxExpirationSeconds")
    );
    let mut b = pcr_body(
        &sim,
        "p1",
        "node-1",
        "kubernetes.io/kube-apiserver-client-pod",
    );
    b["spec"]["maxExpirationSeconds"] = json!(2 * 86400);
    assert!(
        status_of(create(b).await.unwrap_err())
            .message
            .contains("[3600, 86400]")
    );
    let mut b = pcr_body(&sim, "p1", "node-1", SIGNER);
    b["spec"]["unverifiedUserAnnotations"] = json!({"team": "a"});
    assert!(
        status_of(create(b).await.unwrap_err())
            .message
            .contains("domain-prefixed")
    );
    let mut b = pcr_body(&sim, "p1", "node-1", SIGNER);
    b["spec"]["stubPKCS10Request"] = json!("");
    assert!(
        status_of(create(b).await.unwrap_err())
            .message
            .contains("spec.stubPKCS10Request: Required value")
    );
}

#[tokio::test]
async fn release_1_35_takes_a_key_with_proof_of_possession_and_treats_an_empty_stub_as_unset() {
    use k8s_openapi::api::certificates::v1beta1 as beta;
    let sim = sim(Release::V1_35, false).await;
    pod(&sim, "p1", "node-1", "app", SIGNER, false);
    let kubelet = sim.kubelet("node-1").await.unwrap();
    for kt in [
        KeyType::EcdsaP256,
        KeyType::EcdsaP521,
        KeyType::Ed25519,
        KeyType::Rsa3072,
    ] {
        let (created, _) = kubelet
            .create_request("default", "p1", &PodCertificate::new(SIGNER, kt))
            .await
            .unwrap();
        assert_eq!(created["apiVersion"], "certificates.k8s.io/v1beta1");
        assert!(
            created["spec"]["pkixPublicKey"].is_string()
                && created["spec"]["proofOfPossession"].is_string(),
            "{created}"
        );
        assert!(created["spec"].get("stubPKCS10Request").is_none());
    }
    // k8s-openapi's v1beta1 type sends "stubPKCS10Request": "" for a request without stub.
    let created: Value = serde_json::to_value(
        kubelet
            .create_request(
                "default",
                "p1",
                &PodCertificate::new(SIGNER, KeyType::EcdsaP256),
            )
            .await
            .unwrap()
            .0,
    )
    .unwrap();
    let mut typed: beta::PodCertificateRequest = serde_json::from_value(created.clone()).unwrap();
    typed.metadata = kube::api::ObjectMeta {
        name: Some("typed".into()),
        namespace: Some("default".into()),
        ..Default::default()
    };
    let wire = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        wire["spec"]["stubPKCS10Request"], "",
        "the typed client sends an empty stub"
    );
    let api: Api<beta::PodCertificateRequest> =
        Api::namespaced(kubelet.client().clone(), "default");
    api.create(&PostParams::default(), &typed).await.unwrap();
    // A proof of possession over another pod UID does not verify.
    let mut bad = typed.clone();
    bad.metadata.name = Some("bad-pop".into());
    bad.spec.proof_of_possession = Some(k8s_openapi::ByteString(
        created["spec"]["proofOfPossession"]
            .as_str()
            .map(|s| {
                let mut raw = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
                raw[10] ^= 0xff;
                raw
            })
            .unwrap(),
    ));
    let s = status_of(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(s.code, 422);
    assert!(s.message.contains("proof-of-possession"), "{}", s.message);
    // A key type outside the six is refused.
    let rsa2048 =
        rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .unwrap();
    let mut weak = typed.clone();
    weak.metadata.name = Some("weak".into());
    weak.spec.pkix_public_key = Some(k8s_openapi::ByteString(
        rcgen::PublicKeyData::subject_public_key_info(&rsa2048),
    ));
    let s = status_of(api.create(&PostParams::default(), &weak).await.unwrap_err());
    assert!(s.message.contains("3072 or 4096"), "{}", s.message);
    // Without the key pair at all: pkixPublicKey is required on 1.35.
    let mut none = typed.clone();
    none.metadata.name = Some("none".into());
    none.spec.pkix_public_key = None;
    none.spec.proof_of_possession = None;
    let s = status_of(api.create(&PostParams::default(), &none).await.unwrap_err());
    assert!(
        s.message.contains("spec.pkixPublicKey: Required value"),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn one_stored_request_is_seen_through_v1_and_v1beta1() {
    let sim = sim(Release::V1_37, true).await;
    pod(&sim, "p1", "node-1", "app", SIGNER, false);
    let node = sim.kubelet("node-1").await.unwrap();
    let admin = sim.client().await.unwrap();
    // Through v1beta1 with the legacy key fields (a 1.35 kubelet against a 1.37 server).
    let mut body = pcr_body(&sim, "p1", "node-1", SIGNER);
    body["apiVersion"] = json!("certificates.k8s.io/v1beta1");
    body["metadata"] = json!({"name": "legacy", "namespace": "default"});
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ed = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&key.serialize_der())
        .unwrap();
    body["spec"]
        .as_object_mut()
        .unwrap()
        .remove("stubPKCS10Request");
    let pod_uid = body["spec"]["podUID"].as_str().unwrap().to_string();
    body["spec"]["pkixPublicKey"] =
        json!(b64(&rcgen::PublicKeyData::subject_public_key_info(&key)));
    body["spec"]["proofOfPossession"] = json!(b64(ed.sign(pod_uid.as_bytes()).as_ref()));
    pcr_api(node.client().clone(), "v1beta1")
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
    let beta = pcr_api(admin.clone(), "v1beta1")
        .get("legacy")
        .await
        .unwrap();
    assert!(beta.data["spec"]["pkixPublicKey"].is_string());
    assert_eq!(
        beta.types.as_ref().unwrap().api_version,
        "certificates.k8s.io/v1beta1"
    );
    let v1 = pcr_api(admin.clone(), "v1").get("legacy").await.unwrap();
    assert_eq!(
        v1.types.as_ref().unwrap().api_version,
        "certificates.k8s.io/v1"
    );
    assert!(
        v1.data["spec"].get("pkixPublicKey").is_none()
            && v1.data["spec"].get("proofOfPossession").is_none(),
        "{:?}",
        v1.data
    );
    // A v1 write of the unchanged spec keeps the legacy fields (they are not a spec change).
    let mut v1_obj = v1.clone();
    v1_obj.metadata.labels = Some([("seen".to_string(), "v1".to_string())].into());
    pcr_api(admin.clone(), "v1")
        .replace("legacy", &PostParams::default(), &v1_obj)
        .await
        .unwrap();
    assert!(
        pcr_api(admin.clone(), "v1beta1")
            .get("legacy")
            .await
            .unwrap()
            .data["spec"]["pkixPublicKey"]
            .is_string()
    );
    // The typed 1.37 v1 list sees it, and watch events through v1 are converted too.
    let typed: Api<PodCertificateRequest> = Api::namespaced(admin.clone(), "default");
    let list = typed
        .list(&ListParams::default().fields("spec.signerName=example.com/signer"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let mut w = pcr_api(admin.clone(), "v1")
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    match w.next().await.unwrap().unwrap() {
        kube::api::WatchEvent::Added(o) => assert!(o.data["spec"].get("pkixPublicKey").is_none()),
        other => panic!("{other:?}"),
    }
}

fn ca_pem(name: &str, is_ca: bool) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = if is_ca {
        rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
    } else {
        rcgen::IsCa::ExplicitNoCa
    };
    p.self_signed(&key).unwrap().pem()
}

#[tokio::test]
async fn cluster_trust_bundles_follow_the_name_attest_and_content_rules() {
    let sim = sim(Release::V1_37, false).await;
    let publisher = sim
        .client_with_token(&sim.token_for("publisher", &[]))
        .await
        .unwrap();
    bind(
        &sim,
        "publisher",
        "publisher",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["clustertrustbundles"], "verbs": ["create", "update", "get", "list"]}]),
    );
    let api: Api<ClusterTrustBundle> = Api::all(publisher.clone());
    let ctb = |name: &str, signer: Option<&str>, bundle: String| -> ClusterTrustBundle {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"signerName": signer, "trustBundle": bundle}})).unwrap()
    };
    let pp = PostParams::default();
    let root = ca_pem("root", true);
    // Signer-linked bundles need `attest` on the signer.
    let s = status_of(
        api.create(
            &pp,
            &ctb("example.com:signer:root", Some(SIGNER), root.clone()),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 403);
    assert!(
        s.message
            .contains(r#"user not permitted to attest for signerName "example.com/signer""#),
        "{}",
        s.message
    );
    bind(
        &sim,
        "attest",
        "publisher",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["example.com/*"], "verbs": ["attest"]}]),
    );
    api.create(
        &pp,
        &ctb("example.com:signer:root", Some(SIGNER), root.clone()),
    )
    .await
    .unwrap();
    api.create(
        &pp,
        &ctb("plain", None, format!("{root}{}", ca_pem("second", true))),
    )
    .await
    .unwrap();
    let invalid = |r: Result<ClusterTrustBundle, kube::Error>, needle: &str| {
        let s = status_of(r.unwrap_err());
        assert_eq!(s.code, 422, "{s:?}");
        assert!(
            s.message.contains(needle),
            "{needle:?} not in {}",
            s.message
        );
    };
    invalid(
        api.create(&pp, &ctb("wrong-name", Some(SIGNER), root.clone()))
            .await,
        "must be named with prefix example.com:signer:",
    );
    invalid(
        api.create(&pp, &ctb("a:b", None, root.clone())).await,
        "must not have \":\"",
    );
    invalid(
        api.create(&pp, &ctb("leaf", None, ca_pem("leaf", false)))
            .await,
        "does not have IsCA set",
    );
    invalid(
        api.create(&pp, &ctb("dup", None, format!("{root}{root}")))
            .await,
        "duplicate",
    );
    let key_block = rcgen::KeyPair::generate().unwrap().serialize_pem();
    invalid(
        api.create(&pp, &ctb("key", None, format!("{root}{key_block}")))
            .await,
        "bad block type",
    );
    invalid(
        api.create(&pp, &ctb("empty", None, "no pem here".into()))
            .await,
        "at least one trust anchor",
    );
    let headers = root.replace(
        "-----BEGIN CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n",
    );
    invalid(
        api.create(&pp, &ctb("headers", None, headers)).await,
        "headers",
    );
    let mut big = String::new();
    while big.len() <= 1024 * 1024 {
        big.push_str(&ca_pem("big", true));
    }
    invalid(api.create(&pp, &ctb("big", None, big)).await, "Too long");
    // signerName is immutable.
    let mut cur = api.get("example.com:signer:root").await.unwrap();
    cur.spec.signer_name = Some("example.com/other".into());
    invalid(
        api.replace("example.com:signer:root", &pp, &cur).await,
        "immutable",
    );
    // Field selector; and every node and ServiceAccount may read bundles.
    let node = sim.kubelet("node-1").await.unwrap();
    let as_node: Api<ClusterTrustBundle> = Api::all(node.client().clone());
    let found = as_node
        .list(&ListParams::default().fields("spec.signerName=example.com/signer"))
        .await
        .unwrap();
    assert_eq!(
        found
            .items
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["example.com:signer:root"]
    );
    let sa = sim
        .client_with_token(&sim.service_account_token("default", "app").unwrap())
        .await
        .unwrap();
    assert_eq!(
        Api::<ClusterTrustBundle>::all(sa)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn pods_support_metadata_only_list_and_watch() {
    let sim = sim(Release::V1_37, false).await;
    pod(&sim, "p1", "node-1", "app", SIGNER, false);
    let pods: Api<Pod> = Api::namespaced(sim.client().await.unwrap(), "default");
    let list = pods.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("p1"));
    // kube-rs's metadata watcher (Api<PartialObjectMeta<Pod>> asks for metadata-only lists and watches).
    let meta: Api<kube::core::PartialObjectMeta<Pod>> =
        Api::namespaced(sim.client().await.unwrap(), "default");
    let stream = kube::runtime::watcher(meta, kube::runtime::watcher::Config::default());
    let mut stream = Box::pin(stream);
    let mut names = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    pod(&sim, "p2", "node-1", "app", SIGNER, false);
    while names.len() < 2 && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            kube::runtime::watcher::Event::InitApply(m)
            | kube::runtime::watcher::Event::Apply(m) => {
                names.push(m.metadata.name.unwrap());
            }
            _ => {}
        }
    }
    names.sort();
    assert_eq!(names, vec!["p1", "p2"]);
}

/// kubectl against the sim's kubeconfig, optionally as a token user.
fn kubectl(sim: &KubeSim, token: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new("kubectl");
    c.arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .env_remove("KUBECONFIG");
    if let Some(t) = token {
        c.args(["--token", t]);
    }
    c.args(args).output().expect("kubectl runs")
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(out: std::process::Output, needle: &str) {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains(needle), "{needle:?} not in {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_signing_requests_follow_approval_and_signing_rules_with_kubectl() {
    let sim = sim(Release::V1_37, false).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // openssl makes the request, as a workload would.
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=workload",
            "-keyout",
        ])
        .arg(path("k.pem"))
        .arg("-out")
        .arg(path("csr.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let request = b64(&std::fs::read(path("csr.pem")).unwrap());
    let alice = sim.token_for("alice", &["requesters"]);
    let approver = sim.token_for("approver", &[]);
    let signer = sim.token_for("signer", &[]);
    let csr_rules = json!([
        {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get", "list"]},
        {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval", "certificatesigningrequests/status"], "verbs": ["update"]}
    ]);
    bind(&sim, "alice", "alice", csr_rules.clone());
    bind(&sim, "approver", "approver", csr_rules.clone());
    bind(&sim, "signer", "signer", csr_rules);
    bind(
        &sim,
        "approve",
        "approver",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["example.com/*"], "verbs": ["approve"]}]),
    );
    bind(
        &sim,
        "sign",
        "signer",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": [SIGNER], "verbs": ["sign"]}]),
    );
    let csr = |name: &str, signer_name: &str, expiration: i64, req: &str| {
        let f = path(&format!("{name}.json"));
        std::fs::write(&f, json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": req, "signerName": signer_name, "usages": ["client auth", "digital signature"], "expirationSeconds": expiration, "username": "forged", "groups": ["system:masters"]}}).to_string()).unwrap();
        f
    };
    let created: Value = serde_json::from_str(&ok(kubectl(
        &sim,
        Some(&alice),
        &[
            "create",
            "-f",
            &csr("one", SIGNER, 3600, &request),
            "-o",
            "json",
        ],
    )))
    .unwrap();
    assert_eq!(created["spec"]["username"], "alice");
    assert_eq!(
        created["spec"]["groups"],
        json!(["requesters", "system:authenticated"])
    );
    refused(
        kubectl(
            &sim,
            Some(&alice),
            &["create", "-f", &csr("short", SIGNER, 599, &request)],
        ),
        "spec.expirationSeconds",
    );
    refused(
        kubectl(
            &sim,
            Some(&alice),
            &[
                "create",
                "-f",
                &csr("legacy", "kubernetes.io/legacy-unknown", 3600, &request),
            ],
        ),
        "legacy",
    );
    let mut tampered = std::fs::read_to_string(path("csr.pem"))
        .unwrap()
        .into_bytes();
    let at = tampered.len() - 40;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    refused(
        kubectl(
            &sim,
            Some(&alice),
            &[
                "create",
                "-f",
                &csr("tampered", SIGNER, 3600, &b64(&tampered)),
            ],
        ),
        "spec.request",
    );
    ok(kubectl(
        &sim,
        Some(&alice),
        &[
            "create",
            "-f",
            &csr("two", "example.com/other", 3600, &request),
        ],
    ));

    // Approval goes through /approval and needs `approve` on the signer.
    let approval = |name: &str, types: &[&str]| {
        let mut cur: Value = serde_json::from_str(&ok(kubectl(
            &sim,
            None,
            &["get", "csr", name, "-o", "json"],
        )))
        .unwrap();
        cur["status"]["conditions"] = json!(
            types
                .iter()
                .map(
                    |t| json!({"type": t, "status": "True", "reason": "Test", "message": "by test"})
                )
                .collect::<Vec<_>>()
        );
        let f = path(&format!("{name}-approval.json"));
        std::fs::write(&f, cur.to_string()).unwrap();
        f
    };
    let uri = |name: &str, sub: &str| {
        format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/{sub}")
    };
    refused(
        kubectl(
            &sim,
            Some(&alice),
            &[
                "replace",
                "--raw",
                &uri("one", "approval"),
                "-f",
                &approval("one", &["Approved"]),
            ],
        ),
        "user not permitted to approve requests with signerName",
    );
    ok(kubectl(
        &sim,
        Some(&approver),
        &[
            "replace",
            "--raw",
            &uri("one", "approval"),
            "-f",
            &approval("one", &["Approved"]),
        ],
    ));
    refused(
        kubectl(
            &sim,
            Some(&approver),
            &[
                "replace",
                "--raw",
                &uri("one", "approval"),
                "-f",
                &approval("one", &["Approved", "Denied"]),
            ],
        ),
        "mutually exclusive",
    );
    refused(
        kubectl(
            &sim,
            Some(&approver),
            &[
                "replace",
                "--raw",
                &uri("one", "approval"),
                "-f",
                &approval("one", &[]),
            ],
        ),
        "may not remove",
    );
    // Failed is not taken from /approval.
    ok(kubectl(
        &sim,
        Some(&approver),
        &[
            "replace",
            "--raw",
            &uri("one", "approval"),
            "-f",
            &approval("one", &["Approved", "Failed"]),
        ],
    ));
    let one: Value = serde_json::from_str(&ok(kubectl(
        &sim,
        None,
        &["get", "csr", "one", "-o", "json"],
    )))
    .unwrap();
    assert_eq!(
        one["status"]["conditions"].as_array().unwrap().len(),
        1,
        "{one}"
    );
    // Approved written through /status is refused (it is added only through /approval).
    refused(
        kubectl(
            &sim,
            None,
            &[
                "replace",
                "--raw",
                &uri("two", "status"),
                "-f",
                &approval("two", &["Approved"]),
            ],
        ),
        "updates may not add a condition of type",
    );
    let two: Value = serde_json::from_str(&ok(kubectl(
        &sim,
        None,
        &["get", "csr", "two", "-o", "json"],
    )))
    .unwrap();
    assert!(two["status"].get("conditions").is_none(), "{two}");

    // The certificate: `sign` needed, valid PEM, set once.
    let cert_file = |name: &str, pem: &str| {
        let mut cur: Value = serde_json::from_str(&ok(kubectl(
            &sim,
            None,
            &["get", "csr", name, "-o", "json"],
        )))
        .unwrap();
        cur["status"]["certificate"] = json!(b64(pem.as_bytes()));
        let f = path(&format!("{name}-cert.json"));
        std::fs::write(&f, cur.to_string()).unwrap();
        f
    };
    let leaf = ca_pem("issued", false);
    refused(
        kubectl(
            &sim,
            Some(&alice),
            &[
                "replace",
                "--raw",
                &uri("one", "status"),
                "-f",
                &cert_file("one", &leaf),
            ],
        ),
        "user not permitted to sign requests with signerName",
    );
    refused(
        kubectl(
            &sim,
            Some(&signer),
            &[
                "replace",
                "--raw",
                &uri("one", "status"),
                "-f",
                &cert_file("one", "not a certificate"),
            ],
        ),
        "status.certificate",
    );
    ok(kubectl(
        &sim,
        Some(&signer),
        &[
            "replace",
            "--raw",
            &uri("one", "status"),
            "-f",
            &cert_file("one", &leaf),
        ],
    ));
    refused(
        kubectl(
            &sim,
            Some(&signer),
            &[
                "replace",
                "--raw",
                &uri("one", "status"),
                "-f",
                &cert_file("one", &ca_pem("again", false)),
            ],
        ),
        "may not modify existing certificate",
    );
    refused(
        kubectl(
            &sim,
            Some(&signer),
            &[
                "replace",
                "--raw",
                &uri("two", "status"),
                "-f",
                &cert_file("two", &leaf),
            ],
        ),
        "example.com/other",
    );
    // Field selector spec.signerName, and discovery for kubectl's short name.
    let names = ok(kubectl(
        &sim,
        None,
        &[
            "get",
            "csr",
            "--field-selector",
            "spec.signerName=example.com/signer",
            "-o",
            "name",
        ],
    ));
    assert_eq!(
        names.trim(),
        "certificatesigningrequest.certificates.k8s.io/one"
    );
    let all = ok(kubectl(
        &sim,
        None,
        &[
            "get",
            "podcertificaterequests,clustertrustbundles,certificatesigningrequests",
            "-A",
            "-o",
            "name",
        ],
    ));
    let discovery = ok(kubectl(
        &sim,
        None,
        &["get", "--raw", "/apis/certificates.k8s.io/v1"],
    ));
    assert!(
        discovery.contains("certificatesigningrequests/approval")
            && discovery.contains("podcertificaterequests/status"),
        "{discovery}"
    );
    assert!(
        all.contains("certificatesigningrequest.certificates.k8s.io/two"),
        "{all}"
    );
}

/// A raw request: (HTTP status, body as JSON).
async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const APPLY: &str = "application/apply-patch+yaml";

/// A CSR for `signer` created by the admin; its name.
async fn csr(admin: &kube::Client, name: &str, signer: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let request = rcgen::CertificateParams::new(vec!["w.example".to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
        "spec": {"request": b64(request.as_bytes()), "signerName": signer, "usages": ["client auth"]}});
    let (code, out) = raw(
        admin,
        "POST",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        "application/json",
        &body,
    )
    .await;
    assert_eq!(code, 201, "{out}");
    name.to_string()
}

fn csr_status_path(name: &str) -> String {
    format!(
        "/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/status?fieldManager=signer&force=true"
    )
}

#[tokio::test]
async fn applies_to_certificates_kinds_are_typed_by_their_api_types() {
    let sim = sim(Release::V1_37, false).await;
    pod(&sim, "p1", "node-1", "app", SIGNER, false);
    let kubelet = sim.kubelet("node-1").await.unwrap();
    let admin = sim.client().await.unwrap();
    let (created, _) = kubelet
        .create_request(
            "default",
            "p1",
            &PodCertificate::new(SIGNER, KeyType::EcdsaP256),
        )
        .await
        .unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    let pcr_status = format!(
        "/apis/certificates.k8s.io/v1/namespaces/default/podcertificaterequests/{name}/status?fieldManager=signer&force=true"
    );
    // A CSR-style condition field on a PCR (metav1.Condition has no lastUpdateTime): the typed
    // conversion fails, whatever fieldValidation says.
    let now = t(jiff::Timestamp::now().as_second());
    let condition = json!({"type": "Denied", "status": "True", "reason": "UnsupportedKeyType", "message": "no", "lastTransitionTime": now, "lastUpdateTime": now});
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
        "metadata": {"name": name, "namespace": "default"}, "status": {"conditions": [condition]}});
    let (code, out) = raw(&admin, "PATCH", &pcr_status, APPLY, &body).await;
    assert_eq!(code, 500, "{out}");
    let message = out["message"].as_str().unwrap();
    assert!(
        message.starts_with("failed to create typed patch object")
            && message.contains(
                r#".status.conditions[type="Denied"].lastUpdateTime: field not declared in schema"#
            ),
        "{message}"
    );
    let (code, out) = raw(
        &admin,
        "PATCH",
        &format!("{pcr_status}&fieldValidation=Ignore"),
        APPLY,
        &body,
    )
    .await;
    assert_eq!(code, 500, "{out}");
    // The condition as metav1.Condition has it (observedGeneration included) is taken.
    let mut body = body;
    let c = &mut body["status"]["conditions"][0];
    c.as_object_mut().unwrap().remove("lastUpdateTime");
    c["observedGeneration"] = json!(0);
    let (code, out) = raw(&admin, "PATCH", &pcr_status, APPLY, &body).await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["status"]["conditions"][0]["type"], "Denied");
    assert!(
        out["metadata"].get("generation").is_none(),
        "PodCertificateRequests carry no generation: {out}"
    );

    // A CSR status field its type does not have.
    let c = csr(&admin, "typed", SIGNER).await;
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": c}, "status": {"foo": "bar"}});
    let (code, out) = raw(&admin, "PATCH", &csr_status_path(&c), APPLY, &body).await;
    assert_eq!(code, 500, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains(".status.foo: field not declared in schema"),
        "{out}"
    );
    // The Failed condition a CSR signer applies (both CSR condition times) is taken.
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": c}, "status": {"conditions": [
            {"type": "Failed", "status": "True", "reason": "Refused", "message": "no", "lastUpdateTime": now, "lastTransitionTime": now}]}});
    let (code, out) = raw(&admin, "PATCH", &csr_status_path(&c), APPLY, &body).await;
    assert_eq!(code, 200, "{out}");
    assert!(out["metadata"].get("generation").is_none(), "{out}");
    // A ClusterTrustBundle has no status.
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "ClusterTrustBundle",
        "metadata": {"name": "plain"}, "spec": {"trustBundle": ca_pem("root", true)}, "status": {}});
    let (code, out) = raw(
        &admin,
        "PATCH",
        "/apis/certificates.k8s.io/v1/clustertrustbundles/plain?fieldManager=publisher",
        APPLY,
        &body,
    )
    .await;
    assert_eq!(code, 500, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains(".status: field not declared in schema"),
        "{out}"
    );
}

#[tokio::test]
async fn an_apply_that_creates_a_bundle_needs_create_and_is_recorded_as_one() {
    let sim = sim(Release::V1_37, false).await;
    let user = "system:serviceaccount:default:publisher";
    let token = sim.service_account_token("default", "publisher").unwrap();
    let publisher = sim.client_with_token(&token).await.unwrap();
    bind(
        &sim,
        "publisher",
        user,
        json!([
            {"apiGroups": ["certificates.k8s.io"], "resources": ["clustertrustbundles"], "verbs": ["get", "patch"]},
            {"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["example.com/*"], "verbs": ["attest"]}
        ]),
    );
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "publisher"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "publisher"}, "subjects": [{"kind": "ServiceAccount", "name": "publisher", "namespace": "default"}]})).unwrap();
    let name = "example.com:signer:root";
    let path = format!(
        "/apis/certificates.k8s.io/v1/clustertrustbundles/{name}?fieldManager=publisher&force=true"
    );
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "ClusterTrustBundle",
        "metadata": {"name": name}, "spec": {"signerName": SIGNER, "trustBundle": ca_pem("root", true)}});
    let create = kube_sim::Call {
        group: "certificates.k8s.io".into(),
        resource: "clustertrustbundles".into(),
        subresource: String::new(),
        verb: "create".into(),
    };
    // `patch` and `attest` do not create: kube-apiserver also asks for `create`.
    let (code, out) = raw(&publisher, "PATCH", &path, APPLY, &body).await;
    assert_eq!(code, 403, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains(r#"cannot create resource "clustertrustbundles""#),
        "{out}"
    );
    assert!(sim.refused_calls_by(user).contains(&create));
    assert!(!sim.calls_by(user).contains(&create));
    assert!(
        sim.object("certificates.k8s.io", "clustertrustbundles", "", name)
            .is_none()
    );
    bind(
        &sim,
        "publisher-create",
        user,
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["clustertrustbundles"], "verbs": ["create"]}]),
    );
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "publisher-create"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "publisher-create"}, "subjects": [{"kind": "ServiceAccount", "name": "publisher", "namespace": "default"}]})).unwrap();
    let (code, out) = raw(&publisher, "PATCH", &path, APPLY, &body).await;
    assert_eq!(code, 201, "{out}");
    assert!(
        sim.calls_by(user).contains(&create),
        "{:?}",
        sim.calls_by(user)
    );
    // Updating the existing bundle asks for `patch` only.
    sim.clear_calls();
    let mut again = body.clone();
    again["metadata"]["labels"] = json!({"a": "b"});
    let (code, out) = raw(&publisher, "PATCH", &path, APPLY, &again).await;
    assert_eq!(code, 200, "{out}");
    assert!(!sim.calls_by(user).contains(&create));
}

#[tokio::test]
async fn csr_status_writes_follow_the_signing_plugin_and_the_status_validation() {
    let sim = sim(Release::V1_37, false).await;
    let admin = sim.client().await.unwrap();
    let patcher = sim
        .client_with_token(&sim.token_for("patcher", &[]))
        .await
        .unwrap();
    bind(
        &sim,
        "patcher",
        "patcher",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/status"], "verbs": ["get", "patch"]}]),
    );
    let c = csr(&admin, "one", SIGNER).await;
    let now = t(jiff::Timestamp::now().as_second());
    let failed = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": c}, "status": {"conditions": [
            {"type": "Failed", "status": "True", "reason": "Refused", "message": "no", "lastUpdateTime": now, "lastTransitionTime": now}]}});
    // RBAC on /status is not enough to change the conditions: `sign` on the signer is.
    let (code, out) = raw(&patcher, "PATCH", &csr_status_path(&c), APPLY, &failed).await;
    assert_eq!(code, 403, "{out}");
    assert!(
        out["message"].as_str().unwrap().contains(
            r#"user not permitted to sign requests with signerName "example.com/signer""#
        ),
        "{out}"
    );
    assert!(
        sim.object("certificates.k8s.io", "certificatesigningrequests", "", &c)
            .unwrap()["status"]
            .get("conditions")
            .is_none()
    );
    // Approved and Denied are added through /approval only: through /status they are refused.
    for t in ["Approved", "Denied"] {
        let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": c}, "status": {"conditions": [{"type": t, "status": "True", "reason": "Mine"}]}});
        let (code, out) = raw(&admin, "PATCH", &csr_status_path(&c), APPLY, &body).await;
        assert_eq!(code, 422, "{out}");
        assert!(
            out["message"]
                .as_str()
                .unwrap()
                .contains(&format!("updates may not add a condition of type {t:?}")),
            "{out}"
        );
    }
    // Approved through /approval; a /status write that keeps it (and rewrites its message)
    // leaves the stored one in place and in its position.
    let path = format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{c}/approval");
    let mut cur = sim
        .object("certificates.k8s.io", "certificatesigningrequests", "", &c)
        .unwrap();
    cur["status"]["conditions"] =
        json!([{"type": "Approved", "status": "True", "reason": "Ok", "message": "approved"}]);
    let (code, out) = raw(&admin, "PUT", &path, "application/json", &cur).await;
    assert_eq!(code, 200, "{out}");
    let merge = json!({"status": {"conditions": [
        {"type": "Approved", "status": "True", "reason": "Ok", "message": "rewritten"},
        {"type": "Failed", "status": "True", "reason": "Refused", "message": "no"}]}});
    let (code, out) = raw(
        &admin,
        "PATCH",
        &format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{c}/status"),
        "application/merge-patch+json",
        &merge,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    let conds = out["status"]["conditions"].as_array().unwrap();
    assert_eq!(
        (conds[0]["type"].as_str(), conds[0]["message"].as_str()),
        (Some("Approved"), Some("approved"))
    );
    assert_eq!(conds[1]["type"], "Failed");
    assert!(conds[1]["lastUpdateTime"].is_string() && conds[1]["lastTransitionTime"].is_string());
    // A condition of another type must have a status of True, False or Unknown.
    let body = json!({"status": {"conditions": [
        {"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"},
        {"type": "Custom", "status": "Maybe"}]}});
    let (code, out) = raw(
        &admin,
        "PATCH",
        &format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{c}/status"),
        "application/merge-patch+json",
        &body,
    )
    .await;
    assert_eq!(code, 422, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("status.conditions[2].status"),
        "{out}"
    );
}

#[tokio::test]
async fn certificates_kinds_refuse_namespace_selectors_wildcard_signers_and_unconditional_puts() {
    let sim = sim(Release::V1_37, false).await;
    pod(&sim, "p1", "node-1", "app", SIGNER, false);
    let kubelet = sim.kubelet("node-1").await.unwrap();
    let admin = sim.client().await.unwrap();
    // Only metadata.name and the listed spec fields are field labels of certificates.k8s.io.
    for path in [
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        "/apis/certificates.k8s.io/v1/namespaces/default/podcertificaterequests",
        "/apis/certificates.k8s.io/v1/podcertificaterequests",
        "/apis/certificates.k8s.io/v1/clustertrustbundles",
    ] {
        let (code, out) = raw(
            &admin,
            "GET",
            &format!("{path}?fieldSelector=metadata.namespace%3Ddefault"),
            "application/json",
            &Value::Null,
        )
        .await;
        assert_eq!(code, 400, "{path}: {out}");
        assert_eq!(
            out["message"], "field label not supported: metadata.namespace",
            "{path}"
        );
        let (code, out) = raw(
            &admin,
            "GET",
            &format!("{path}?fieldSelector=metadata.name%3Dx"),
            "application/json",
            &Value::Null,
        )
        .await;
        assert_eq!(code, 200, "{path}: {out}");
    }
    // `*` is an RBAC wildcard, not a signer name.
    let key = rcgen::KeyPair::generate().unwrap();
    let request = rcgen::CertificateParams::new(vec!["w.example".to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "wild"},
        "spec": {"request": b64(request.as_bytes()), "signerName": "example.com/*", "usages": ["client auth"]}});
    let (code, out) = raw(
        &admin,
        "POST",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        "application/json",
        &body,
    )
    .await;
    assert_eq!(code, 422, "{out}");
    assert!(
        out["message"].as_str().unwrap().contains("spec.signerName"),
        "{out}"
    );
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "ClusterTrustBundle",
        "metadata": {"name": "example.com:*:root"}, "spec": {"signerName": "example.com/*", "trustBundle": ca_pem("root", true)}});
    let (code, out) = raw(
        &admin,
        "POST",
        "/apis/certificates.k8s.io/v1/clustertrustbundles",
        "application/json",
        &body,
    )
    .await;
    assert_eq!(code, 422, "{out}");

    // A PUT without resourceVersion: refused for PodCertificateRequests and
    // ClusterTrustBundles, taken for CertificateSigningRequests.
    let (created, _) = kubelet
        .create_request(
            "default",
            "p1",
            &PodCertificate::new(SIGNER, KeyType::EcdsaP256),
        )
        .await
        .unwrap();
    let pcr_name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert!(created["metadata"].get("generation").is_none(), "{created}");
    let ctb = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "ClusterTrustBundle",
        "metadata": {"name": "plain"}, "spec": {"trustBundle": ca_pem("root", true)}});
    let (code, out) = raw(
        &admin,
        "POST",
        "/apis/certificates.k8s.io/v1/clustertrustbundles",
        "application/json",
        &ctb,
    )
    .await;
    assert_eq!(code, 201, "{out}");
    let c = csr(&admin, "plain", SIGNER).await;
    for (path, group_path, ok) in [
        (
            format!(
                "/apis/certificates.k8s.io/v1/namespaces/default/podcertificaterequests/{pcr_name}"
            ),
            ("podcertificaterequests", "default", pcr_name.as_str()),
            false,
        ),
        (
            format!(
                "/apis/certificates.k8s.io/v1/namespaces/default/podcertificaterequests/{pcr_name}/status"
            ),
            ("podcertificaterequests", "default", pcr_name.as_str()),
            false,
        ),
        (
            "/apis/certificates.k8s.io/v1/clustertrustbundles/plain".to_string(),
            ("clustertrustbundles", "", "plain"),
            false,
        ),
        (
            format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{c}"),
            ("certificatesigningrequests", "", c.as_str()),
            true,
        ),
    ] {
        let (plural, ns, name) = group_path;
        let mut cur = sim.object("certificates.k8s.io", plural, ns, name).unwrap();
        cur["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        cur["metadata"]["labels"] = json!({"unconditional": "yes"});
        let (code, out) = raw(&admin, "PUT", &path, "application/json", &cur).await;
        if ok {
            assert_eq!(code, 200, "{path}: {out}");
        } else {
            assert_eq!(code, 422, "{path}: {out}");
            assert!(
                out["message"].as_str().unwrap().contains(
                    "metadata.resourceVersion: Invalid value: 0: must be specified for an update"
                ),
                "{path}: {out}"
            );
        }
    }
}
