//! Identities and RBAC, judged by the real kubectl against the standalone binary and by kube-rs:
//! token file, anonymous, admin kubeconfig, ServiceAccount tokens, RBAC with default grants,
//! kube-apiserver's 403 bodies, access reviews, the call record and the CertificateRequest webhook.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube_sim::{Call, KubeSim, SimOptions, TokenUser};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;

/// A running `kube-sim` binary; killed on drop.
struct Standalone {
    child: std::process::Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Standalone {
    fn start(args: &[&str], token_file: Option<&str>) -> Standalone {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kubeconfig");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kube-sim"));
        cmd.arg("--kubeconfig").arg(&kc).args(args);
        if let Some(t) = token_file {
            // kubectl sends bearer tokens only over TLS.
            cmd.arg("--tls");
            let f = dir.path().join("tokens.csv");
            std::fs::write(&f, t).unwrap();
            cmd.arg("--token-auth-file").arg(&f);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("kube-sim binary runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Standalone {
            child,
            dir,
            url: line.trim().to_string(),
        }
    }

    fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A kubeconfig with no user credentials at all.
    fn anonymous_kubeconfig(&self) -> std::path::PathBuf {
        let p = self.dir.path().join("anonymous");
        std::fs::write(
            &p,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
                self.url
            ),
        )
        .unwrap();
        p
    }

    fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .expect("kubectl runs")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(&self.kubeconfig(), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn refused(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have been refused: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn file(&self, name: &str, body: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    }
}

const TOKENS: &str = "alice-token,alice,alice-uid,\"devs,qa\"\n\
node-token,system:node:node-1,node-1-uid,system:nodes\n";

#[test]
fn standalone_with_a_token_file_serves_an_rbac_limited_kubectl_user() {
    let sim = Standalone::start(&[], Some(TOKENS));
    // The kubeconfig's user is the admin, with a bearer token.
    let kc = std::fs::read_to_string(sim.kubeconfig()).unwrap();
    assert!(kc.contains("token: kube-sim-admin."), "{kc}");
    sim.ok(&["get", "configmaps", "-n", "default"]);

    // alice has no grant yet: kube-apiserver's message, as kubectl prints it.
    let e = sim.refused(&[
        "--token",
        "alice-token",
        "get",
        "configmaps",
        "-n",
        "default",
    ]);
    assert!(
        e.contains(r#"configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "default""#),
        "{e}"
    );
    // An unknown token is 401, not anonymous.
    let e = sim.refused(&["--token", "nope", "get", "configmaps"]);
    assert!(
        e.contains("Unauthorized") || e.contains("provide credentials"),
        "{e}"
    );

    let rbac = sim.file(
        "rbac.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: cm-reader, namespace: default}\n\
rules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get, list]\n- apiGroups: [\"\"]\n  resources: [secrets]\n  resourceNames: [visible]\n  verbs: [get]\n\
---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: devs-read, namespace: default}\n\
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}\n",
    );
    sim.ok(&["apply", "-f", &rbac]);
    sim.ok(&[
        "create",
        "configmap",
        "c1",
        "-n",
        "default",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    let cm = sim.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1, namespace: default}\ndata: {a: b}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: visible, namespace: default}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: hidden, namespace: default}\n",
    );
    sim.ok(&["apply", "-f", &cm]);
    let out = sim.ok(&[
        "--token",
        "alice-token",
        "get",
        "configmaps",
        "-n",
        "default",
        "-o",
        "name",
    ]);
    assert!(out.contains("configmap/c1"), "{out}");
    // Not in another namespace, not another verb, only the named secret.
    let e = sim.refused(&[
        "--token",
        "alice-token",
        "get",
        "configmaps",
        "-n",
        "kube-system",
    ]);
    assert!(e.contains(r#"in the namespace "kube-system""#), "{e}");
    let e = sim.refused(&[
        "--token",
        "alice-token",
        "delete",
        "configmap",
        "c1",
        "-n",
        "default",
    ]);
    assert!(
        e.contains(
            r#"configmaps "c1" is forbidden: User "alice" cannot delete resource "configmaps""#
        ),
        "{e}"
    );
    sim.ok(&[
        "--token",
        "alice-token",
        "get",
        "secret",
        "visible",
        "-n",
        "default",
    ]);
    let e = sim.refused(&[
        "--token",
        "alice-token",
        "get",
        "secret",
        "hidden",
        "-n",
        "default",
    ]);
    assert!(e.contains(r#"secrets "hidden" is forbidden"#), "{e}");
    let e = sim.refused(&["--token", "alice-token", "get", "secrets", "-n", "default"]);
    assert!(e.contains("cannot list resource \"secrets\""), "{e}");

    // Discovery and /version work for every authenticated user (system:discovery).
    sim.ok(&["--token", "alice-token", "get", "--raw", "/apis"]);
    // Who am I, and may I? (SelfSubjectReview and SelfSubjectAccessReview, sent as JSON.)
    let ssr = sim.file(
        "ssr.json",
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#,
    );
    let me: Value = serde_json::from_str(&sim.ok(&[
        "--token",
        "alice-token",
        "create",
        "--raw",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        "-f",
        &ssr,
    ]))
    .unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "alice");
    assert_eq!(me["status"]["userInfo"]["uid"], "alice-uid");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!(["devs", "qa", "system:authenticated"])
    );
    let can = |verb: &str, res: &str| -> bool {
        let f = sim.file(
            "ssar.json",
            &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "resource": res}}}).to_string(),
        );
        let v: Value = serde_json::from_str(&sim.ok(&[
            "--token",
            "alice-token",
            "create",
            "--raw",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "-f",
            &f,
        ]))
        .unwrap();
        v["status"]["allowed"].as_bool().unwrap()
    };
    assert!(can("list", "configmaps"));
    assert!(!can("create", "configmaps"));

    // Without credentials (kube-rs: kubectl would prompt for a password over TLS): system:anonymous,
    // who may read /version but not discover APIs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(sim.anonymous_kubeconfig()).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let anon = kube::Client::try_from(cfg).unwrap();
        let v = anon.apiserver_version().await.unwrap();
        assert_eq!(v.minor, "37", "the default release is the newest");
        let e = anon.list_core_api_versions().await.unwrap_err();
        let s = match e {
            kube::Error::Api(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(s.code, 403);
        assert_eq!(
            s.message,
            r#"forbidden: User "system:anonymous" cannot get path "/api""#
        );
    });
}

#[test]
fn standalone_release_flags_set_version_and_certificates_versions() {
    let versions = |args: &[&str]| -> (String, String) {
        let sim = Standalone::start(args, None);
        let v: Value = serde_json::from_str(&sim.ok(&["version", "-o", "json"])).unwrap();
        (
            v["serverVersion"]["minor"].as_str().unwrap().to_string(),
            sim.ok(&["api-versions"]),
        )
    };
    let (minor, av) = versions(&["--kubernetes-release", "1.35"]);
    assert_eq!(minor, "35");
    assert!(
        av.contains("certificates.k8s.io/v1beta1") && av.contains("certificates.k8s.io/v1\n"),
        "{av}"
    );
    let (minor, av) = versions(&[]);
    assert_eq!(minor, "37");
    assert!(!av.contains("certificates.k8s.io/v1beta1"), "{av}");
    let (_, av) = versions(&["--runtime-config", "certificates.k8s.io/v1beta1=true"]);
    assert!(av.contains("certificates.k8s.io/v1beta1"), "{av}");
    // Bad values are refused with the accepted ones named.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["--kubeconfig", "/dev/null", "--kubernetes-release", "1.32"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1.35, 1.36 and 1.37"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("t.csv");
    std::fs::write(&bad, "tok,user\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["--kubeconfig", "/dev/null", "--token-auth-file"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1: must have at least 3 columns"));
}

async fn rbac_sim() -> KubeSim {
    let mut opts = SimOptions::default();
    opts.token_users = vec![
        TokenUser::new("bob-token", "bob", &["team"]),
        TokenUser::new("root-token", "root", &["system:masters"]),
    ];
    KubeSim::start(opts).await.unwrap()
}

fn status_of(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn service_account_tokens_follow_rbac_and_die_with_their_account() {
    let sim = rbac_sim().await;
    let admin = sim.client().await.unwrap();
    // TokenRequest through kube-rs.
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap(),
    )
    .await
    .unwrap();
    let tr = sas
        .create_token_request(
            "app",
            &PostParams::default(),
            &serde_json::from_value(
                json!({"spec": {"audiences": ["x"], "expirationSeconds": 3600}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let token = tr.status.unwrap().token.unwrap();
    let app = sim.client_with_token(&token).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(app.clone(), "default");
    let s = status_of(cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        r#"configmaps is forbidden: User "system:serviceaccount:default:app" cannot list resource "configmaps" in API group "" in the namespace "default""#
    );
    // The built-in grant: ClusterTrustBundles are readable by every ServiceAccount.
    let ctb: Api<k8s_openapi::api::certificates::v1::ClusterTrustBundle> = Api::all(app.clone());
    ctb.list(&ListParams::default()).await.unwrap();
    // A ClusterRoleBinding to the ServiceAccount (namespace from the subject) grants the list.
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cm"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]})).unwrap();
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "cm"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm"}, "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "default"}]})).unwrap();
    cms.list(&ListParams::default()).await.unwrap();
    // The harness token of another account does not share the grant.
    let other = sim.service_account_token("default", "other").unwrap();
    let other_cms: Api<ConfigMap> =
        Api::namespaced(sim.client_with_token(&other).await.unwrap(), "default");
    assert_eq!(
        status_of(other_cms.list(&ListParams::default()).await.unwrap_err()).code,
        403
    );
    // The record: what app used, allowed and refused.
    let calls = sim.calls_by("system:serviceaccount:default:app");
    let call = |g: &str, r: &str, v: &str| Call {
        group: g.into(),
        resource: r.into(),
        subresource: String::new(),
        verb: v.into(),
    };
    assert!(calls.contains(&call("", "configmaps", "list")), "{calls:?}");
    assert!(
        calls.contains(&call("certificates.k8s.io", "clustertrustbundles", "list")),
        "{calls:?}"
    );
    assert!(
        sim.refused_calls_by("system:serviceaccount:default:app")
            .contains(&call("", "configmaps", "list"))
    );
    assert!(
        sim.calls_by("system:serviceaccount:default:app")
            .iter()
            .all(|c| c.verb != "create")
    );
    let admin_calls = sim.calls_by("kubernetes-admin");
    assert!(
        admin_calls.contains(&Call {
            group: String::new(),
            resource: "serviceaccounts".into(),
            subresource: "token".into(),
            verb: "create".into()
        }),
        "{admin_calls:?}"
    );
    // Deleting the ServiceAccount invalidates its tokens.
    sas.delete("app", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        status_of(cms.list(&ListParams::default()).await.unwrap_err()).code,
        401
    );
    // Too short a token is refused.
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap(),
    )
    .await
    .unwrap();
    let e = sas
        .create_token_request(
            "app",
            &PostParams::default(),
            &serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 60}}))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(status_of(e).code, 422);
}

#[tokio::test]
async fn subject_access_reviews_answer_from_rbac_including_signers_and_non_resource_urls() {
    let sim = rbac_sim().await;
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "signer"}, "rules": [
        {"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["example.com/*"], "verbs": ["sign"]},
        {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/status"], "verbs": ["update"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
        {"apiGroups": ["cert-manager.io"], "resources": ["signers"], "resourceNames": ["my-issuer"], "verbs": ["reference"]}
    ]})).unwrap();
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "signer"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "signer"}, "subjects": [{"kind": "User", "name": "bob"}]})).unwrap();
    let client = sim.client().await.unwrap();
    let review = |spec: Value| {
        let client = client.clone();
        async move {
            let req = http::Request::post("/apis/authorization.k8s.io/v1/subjectaccessreviews")
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec})).unwrap())
                .unwrap();
            let v: Value = client.request(req).await.unwrap();
            v["status"]["allowed"].as_bool().unwrap()
        }
    };
    let res = |user: &str, verb: &str, g: &str, r: &str, sub: &str, name: &str| json!({"user": user, "groups": ["system:authenticated"], "resourceAttributes": {"verb": verb, "group": g, "resource": r, "subresource": sub, "name": name}});
    assert!(
        review(res(
            "bob",
            "sign",
            "certificates.k8s.io",
            "signers",
            "",
            "example.com/*"
        ))
        .await
    );
    assert!(
        !review(res(
            "bob",
            "approve",
            "certificates.k8s.io",
            "signers",
            "",
            "example.com/*"
        ))
        .await
    );
    assert!(
        !review(res(
            "carol",
            "sign",
            "certificates.k8s.io",
            "signers",
            "",
            "example.com/*"
        ))
        .await
    );
    assert!(
        review(res(
            "bob",
            "update",
            "certificates.k8s.io",
            "certificatesigningrequests",
            "status",
            "x"
        ))
        .await
    );
    assert!(
        !review(res(
            "bob",
            "update",
            "certificates.k8s.io",
            "certificatesigningrequests",
            "",
            "x"
        ))
        .await,
        "the subresource grant is not the resource"
    );
    assert!(review(json!({"user": "bob", "resourceAttributes": {"namespace": "team-a", "verb": "reference", "group": "cert-manager.io", "resource": "signers", "name": "my-issuer"}})).await);
    assert!(!review(json!({"user": "bob", "resourceAttributes": {"namespace": "team-a", "verb": "reference", "group": "cert-manager.io", "resource": "signers", "name": "other"}})).await);
    assert!(
        review(
            json!({"user": "bob", "nonResourceAttributes": {"verb": "get", "path": "/metrics"}})
        )
        .await
    );
    assert!(
        !review(
            json!({"user": "bob", "nonResourceAttributes": {"verb": "get", "path": "/metricsz"}})
        )
        .await
    );
    assert!(review(json!({"user": "x", "groups": ["system:masters"], "resourceAttributes": {"verb": "delete", "resource": "nodes"}})).await);
    assert!(review(json!({"user": "n", "groups": ["system:nodes"], "resourceAttributes": {"verb": "list", "group": "certificates.k8s.io", "resource": "clustertrustbundles"}})).await);
    // Only authorized callers may ask about others.
    let bob = sim.client_with_token("bob-token").await.unwrap();
    let req = http::Request::post("/apis/authorization.k8s.io/v1/subjectaccessreviews")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"user": "x", "nonResourceAttributes": {"verb": "get", "path": "/"}}})).unwrap())
        .unwrap();
    let s = status_of(bob.request::<Value>(req).await.unwrap_err());
    assert_eq!(
        s.message,
        r#"subjectaccessreviews.authorization.k8s.io is forbidden: User "bob" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope"#
    );
}

#[tokio::test]
async fn certificaterequest_identity_comes_from_the_caller_unless_in_system_masters() {
    let sim = rbac_sim().await;
    sim.install_crds_yaml(&project_crds()).await.unwrap();
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cr", "namespace": "default"}, "rules": [{"apiGroups": ["cert-manager.io"], "resources": ["certificaterequests"], "verbs": ["create"]}]})).unwrap();
    sim.put_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "cr", "namespace": "default"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cr"}, "subjects": [{"kind": "Group", "name": "team"}]})).unwrap();
    let mut forged = cr_body("by-bob");
    forged["spec"]["username"] = json!("system:serviceaccount:istio-system:cert-manager-istio-csr");
    forged["spec"]["groups"] = json!(["system:masters"]);
    let created = cr_api(sim.client_with_token("bob-token").await.unwrap(), "default")
        .create(&PostParams::default(), &dynamic(forged.clone()))
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["username"], "bob");
    assert_eq!(created.data["spec"]["uid"], "bob");
    assert_eq!(
        created.data["spec"]["groups"],
        json!(["team", "system:authenticated"])
    );
    forged["metadata"]["name"] = json!("by-root");
    let kept = cr_api(
        sim.client_with_token("root-token").await.unwrap(),
        "default",
    )
    .create(&PostParams::default(), &dynamic(forged.clone()))
    .await
    .unwrap();
    assert_eq!(
        kept.data["spec"]["username"],
        "system:serviceaccount:istio-system:cert-manager-istio-csr"
    );
    assert_eq!(kept.data["spec"]["groups"], json!(["system:masters"]));
    // The admin of the kubeconfig is in system:masters too.
    forged["metadata"]["name"] = json!("by-admin");
    let kept = cr_api(sim.client().await.unwrap(), "default")
        .create(&PostParams::default(), &dynamic(forged))
        .await
        .unwrap();
    assert_eq!(
        kept.data["spec"]["username"],
        "system:serviceaccount:istio-system:cert-manager-istio-csr"
    );
    // bob may create but not read.
    let s = status_of(
        cr_api(sim.client_with_token("bob-token").await.unwrap(), "default")
            .get("by-bob")
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 403);
    assert_eq!(
        s.message,
        r#"certificaterequests.cert-manager.io "by-bob" is forbidden: User "bob" cannot get resource "certificaterequests" in API group "cert-manager.io" in the namespace "default""#
    );
}

#[tokio::test]
async fn without_authentication_everyone_is_the_admin() {
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    let kc = std::fs::read_to_string(sim.kubeconfig_path()).unwrap();
    assert!(!kc.contains("token:"), "{kc}");
    assert!(sim.admin_token().is_none());
    let anon = sim.anonymous_client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(anon.clone(), "kube-system");
    cms.list(&ListParams::default()).await.unwrap();
    let req = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header("content-type", "application/json")
        .body(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.to_vec())
        .unwrap();
    let me: Value = anon.request(req).await.unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "kubernetes-admin");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
}
