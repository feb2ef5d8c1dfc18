//! What the controller writes is judged by upstream's schemas, never by the project's own copies:
//! cert-manager's published CertificateRequest CRD (transcribed in tests/upstream-crds/), our own
//! Issuer CRDs for issuer status, and Kubernetes' published OpenAPI (the strict schemas of the PyPI
//! package kubernetes-validate, of the release kube-sim plays) for every built-in kind it writes:
//! CertificateSigningRequest status applies, PodCertificateRequest status and ClusterTrustBundle
//! applies (v1 on 1.37, v1beta1 on 1.35), Events (creates and series merge patches), Leases and
//! SubjectAccessReviews. The controller runs against kube-sim with every front door and the
//! trust-bundle publisher on, its client through a relay that keeps each request as sent and
//! kube-sim's answer (for a patch, the object as stored after it).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firefly::run::{Controller, StartOptions};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::CustomResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube_sim::Release;
use kube_sim::kubelet::{KeyType, Outcome, PodCertificate};
use serde_json::{Value, json};
use support::controller::*;
use support::{istiod, pods, schema_judge, verifiers};

const CERT_MANAGER_CRD: &str = kube_sim::CERT_MANAGER_CERTIFICATE_REQUEST_CRD;
const CR_CRD_NAME: &str = "certificaterequests.cert-manager.io";

fn upstream_certificate_request_schema() -> Value {
    schema_judge::crd_schema(CERT_MANAGER_CRD, CR_CRD_NAME, "v1")
}

/// Every property path of `mirror` (a schema) that `upstream` does not declare with the same
/// type and format.
fn mirror_fields_missing_upstream(mirror: &Value, upstream: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let props = mirror
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (k, m) in props {
        let here = format!("{path}.{k}");
        let Some(u) = upstream.pointer(&format!("/properties/{k}")) else {
            out.push(format!("{here}: not declared by cert-manager"));
            continue;
        };
        for facet in ["type", "format"] {
            if m.get(facet) != u.get(facet) {
                out.push(format!(
                    "{here}: {facet} {:?} here, {:?} in cert-manager's CRD",
                    m.get(facet),
                    u.get(facet)
                ));
            }
        }
        out.extend(mirror_fields_missing_upstream(m, u, &here));
        if let (Some(mi), Some(ui)) = (m.get("items"), u.get("items")) {
            out.extend(mirror_fields_missing_upstream(mi, ui, &format!("{here}[]")));
        }
    }
    out
}

#[test]
fn the_rust_mirror_declares_no_field_that_cert_managers_crd_lacks() {
    let crd = serde_json::to_value(firefly::crd::CertificateRequest::crd()).unwrap();
    let mirror = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let upstream = upstream_certificate_request_schema();
    let missing = mirror_fields_missing_upstream(mirror, &upstream, "");
    assert!(
        missing.is_empty(),
        "the Rust mirror of CertificateRequest differs from cert-manager's CRD:\n{}",
        missing.join("\n")
    );

    // The comparison can fail: the field this project once wrote is caught.
    let mut doctored = mirror.clone();
    doctored["properties"]["status"]["properties"]["conditions"]["items"]["properties"]["observedGeneration"] =
        json!({"type": "integer", "format": "int64"});
    let missing = mirror_fields_missing_upstream(&doctored, &upstream, "");
    assert_eq!(
        missing,
        [".status.conditions[].observedGeneration: not declared by cert-manager"]
    );
}

#[test]
fn the_judge_refuses_what_kube_apiserver_refuses() {
    let schema = upstream_certificate_request_schema();
    let good = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "r", "namespace": "istio-system"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Issued",
            "message": "m", "lastTransitionTime": "2026-12-04T10:00:00Z"}],
            "certificate": "Q0VSVA==", "ca": "Q0E=", "failureTime": "2026-12-04T10:00:00Z"},
    });
    assert_eq!(
        schema_judge::violations(&schema, &good),
        Vec::<String>::new()
    );
    let mut bad = good.clone();
    bad["status"]["conditions"][0]["observedGeneration"] = json!(1);
    bad["status"]["certificate"] = json!("not base64!");
    bad["status"]["conditions"][0]["status"] = json!("Yes");
    bad["metadata"]["bogus"] = json!(true);
    assert_eq!(
        schema_judge::violations(&schema, &bad),
        [
            ".metadata.bogus: not a field of ObjectMeta",
            ".status.certificate: not base64 (format byte)",
            ".status.conditions[0].observedGeneration: field not declared in schema",
            ".status.conditions[0].status: \"Yes\" is not one of [String(\"True\"), String(\"False\"), String(\"Unknown\")]",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The judge of built-in kinds: kubernetes-validate's strict schemas (every undeclared field an
// error), run by a script this test owns.
// ---------------------------------------------------------------------------------------------

/// One object for kubernetes-validate: `partial` for a server-side apply or merge patch body,
/// judged against the kind's strict schema with every `required` dropped (a patch names only
/// what it sets) but every undeclared field, type, enum and format still refused.
struct Item {
    label: String,
    object: Value,
    partial: bool,
}

/// The judge script: one verdict per item, in order — `{"problems": [...]}` (empty: passes) or
/// `{"error": "..."}` when the item could not be judged at all (no apiVersion/kind, no upstream
/// schema, an exception): never a verdict either way.
const JUDGE_SCRIPT: &str = r#"
import base64, binascii, datetime, json, re, sys, traceback

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

items_path, release = sys.argv[1], sys.argv[2]
DIR = "v%s-local-strict" % release
if release not in kv.all_versions():
    sys.exit("kubernetes-validate %s ships no schemas for %s (it has %s)"
             % (kubernetes_validate.__version__, release, kv.all_versions()))

# The formats the published schemas declare, checked as kube-apiserver's decoding would.
FORMATS = jsonschema.FormatChecker(())
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")

@FORMATS.checks("byte", raises=(binascii.Error, ValueError))
def _byte(v):
    if isinstance(v, str):
        base64.b64decode(v, validate=True)
    return True

@FORMATS.checks("date-time", raises=ValueError)
def _date_time(v):
    if not isinstance(v, str):
        return True
    if not RFC3339.match(v):
        return False
    v = re.sub(r"\.(\d{6})\d+", r".\1", v).replace("Z", "+00:00")
    datetime.datetime.fromisoformat(v)
    return True

@FORMATS.checks("int32")
def _int32(v):
    return not isinstance(v, int) or -2**31 <= v < 2**31

def without_required(node):
    if isinstance(node, dict):
        return {k: without_required(v) for k, v in node.items()
                if not (k == "required" and isinstance(v, list))}
    if isinstance(node, list):
        return [without_required(v) for v in node]
    return node

def where(path):
    out = ""
    for p in path:
        out += "[%d]" % p if isinstance(p, int) else "." + str(p)
    return out or "."

class NotJudgeable(Exception):
    pass

def schemas(obj):
    # The file kubernetes_validate.validate(strict=True) picks for this kind and version.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
    name = "kubernetes-json-schema/%s/%s-%s.json" % (DIR, obj["kind"].lower(), group_version)
    try:
        schema = kv.schema_contents(name, release)
    except FileNotFoundError:
        raise NotJudgeable("no upstream schema for %s %s in %s" % (obj["apiVersion"], obj["kind"], DIR))
    return schema, kv.schema_contents("kubernetes-json-schema/%s/_definitions.json" % DIR, release)

def problems(item):
    obj = item["object"]
    if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) \
            or not isinstance(obj.get("kind"), str):
        raise NotJudgeable("not an object with a string apiVersion and kind")
    schema, definitions = schemas(obj)
    found = []
    if not item["partial"]:
        # The package's own verdict (its first error).
        try:
            kubernetes_validate.validate(obj, release, strict=True)
        except kubernetes_validate.ValidationError as e:
            found.append("%s: %s" % (where(e.absolute_path), e.message))
    if item["partial"]:
        schema, definitions = without_required(schema), without_required(definitions)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    validator = jsonschema.validators.Draft202012Validator(
        schema, registry=registry, format_checker=FORMATS)
    for e in validator.iter_errors(obj):
        line = "%s: %s" % (where(e.absolute_path), e.message)
        if line not in found:
            found.append(line)
    return sorted(found)

verdicts = []
for item in json.load(open(items_path)):
    try:
        verdicts.append({"problems": problems(item)})
    except NotJudgeable as e:
        verdicts.append({"error": str(e)})
    except Exception:
        verdicts.append({"error": traceback.format_exc(limit=3).strip()})
print(json.dumps(verdicts))
"#;

/// Judges every item with kubernetes-validate's strict schemas of Kubernetes `release` (the
/// release kube-sim plays, e.g. `1.37.0`; the package ships `v<release>-local-strict`): one
/// verdict per item, in order — `Ok(problems)` (empty: passes), `Err(why)` when the item could
/// not be judged. Panics when the script itself does not run or answers anything but one
/// verdict per item.
fn judge(items: &[Item], release: &str) -> Vec<Result<Vec<String>, String>> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.json");
    let payload: Vec<Value> = items
        .iter()
        .map(|i| json!({"object": i.object, "partial": i.partial}))
        .collect();
    std::fs::write(&input, serde_json::to_vec(&payload).unwrap()).unwrap();
    let out = Command::new(verifiers::python())
        .arg("-c")
        .arg(JUDGE_SCRIPT)
        .arg(&input)
        .arg(release)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the kubernetes-validate judge did not run (no verdict either way): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the judge answered no JSON list ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        verdicts.len(),
        items.len(),
        "the judge must answer one verdict per item: {verdicts:?}"
    );
    verdicts
        .into_iter()
        .map(|v| match (v.get("problems"), v.get("error")) {
            (Some(Value::Array(p)), None) => Ok(p
                .iter()
                .map(|l| l.as_str().unwrap_or_default().to_owned())
                .collect()),
            (None, Some(e)) => Err(e.as_str().unwrap_or_default().to_owned()),
            _ => panic!("not a verdict: {v}"),
        })
        .collect()
}

/// [`judge`], the problems and the unjudgeable items each as `label: line`.
fn judge_all(items: &[Item], release: &str) -> (Vec<String>, Vec<String>) {
    let (mut problems, mut errors) = (Vec::new(), Vec::new());
    for (item, verdict) in items.iter().zip(judge(items, release)) {
        match verdict {
            Ok(p) => problems.extend(p.into_iter().map(|l| format!("{}: {l}", item.label))),
            Err(e) => errors.push(format!("{}: {e}", item.label)),
        }
    }
    (problems, errors)
}

fn item(label: &str, object: Value, partial: bool) -> Item {
    Item {
        label: label.to_owned(),
        object,
        partial,
    }
}

// ---------------------------------------------------------------------------------------------
// What the controller sends: a loopback relay between its client and kube-sim keeps every byte
// both ways, so every write is seen exactly as sent (path, query, Content-Type, body) with the
// object kube-sim answered (for a patch: the object as stored after the write).
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Transcript {
    sent: Vec<u8>,
    received: Vec<u8>,
}

type Transcripts = Arc<Mutex<Vec<Arc<Mutex<Transcript>>>>>;

struct Relay {
    addr: std::net::SocketAddr,
    connections: Transcripts,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, keeping each chunk before forwarding it (so a response the client
/// has read is already kept).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    transcript: Arc<Mutex<Transcript>>,
    sent: bool,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut t = transcript.lock().unwrap();
            if sent {
                t.sent.extend_from_slice(&buf[..n]);
            } else {
                t.received.extend_from_slice(&buf[..n]);
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

async fn relay(upstream: std::net::SocketAddr) -> Relay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Transcripts::default();
    let kept = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let transcript = Arc::new(Mutex::new(Transcript::default()));
            kept.lock().unwrap().push(transcript.clone());
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::join!(
                    pump(client_read, server_write, transcript.clone(), true),
                    pump(server_read, client_write, transcript, false),
                );
            });
        }
    });
    Relay {
        addr,
        connections,
        task,
    }
}

/// One HTTP/1.1 message: start line, lower-cased headers, de-chunked body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The message starting at `at`, and where the next one starts; `None` when the transcript ends
/// before the message does (a watch still streaming when the relay was read).
fn message(buf: &[u8], at: usize, request: bool) -> Option<(Message, usize)> {
    let head_end = at + find(&buf[at..], b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[at..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut msg = Message {
        start,
        headers,
        body: Vec::new(),
    };
    let mut pos = head_end + 4;
    let status: u16 = if request {
        0
    } else {
        msg.start.split(' ').nth(1)?.parse().ok()?
    };
    if msg
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let line_end = pos + find(&buf[pos..], b"\r\n")?;
            let size_text = std::str::from_utf8(&buf[pos..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            pos = line_end + 2;
            if size == 0 {
                // Trailers (none expected), then the empty line.
                pos += find(&buf[pos..], b"\r\n")? + 2;
                break;
            }
            msg.body.extend_from_slice(buf.get(pos..pos + size)?);
            pos += size + 2;
        }
    } else if let Some(n) = msg.header("content-length") {
        let n: usize = n.parse().ok()?;
        msg.body = buf.get(pos..pos + n)?.to_vec();
        pos += n;
    } else if !(request || status < 200 || status == 204 || status == 304) {
        // Delimited by the end of the connection.
        msg.body = buf[pos..].to_vec();
        pos = buf.len();
    }
    Some((msg, pos))
}

/// One write the controller sent, with kube-sim's answer.
struct Write {
    method: String,
    group: String,
    version: String,
    namespace: String,
    plural: String,
    name: String,
    sub: Option<String>,
    query: BTreeMap<String, String>,
    content_type: String,
    body: Vec<u8>,
    status: u16,
    answer: Vec<u8>,
}

impl Write {
    fn what(&self) -> String {
        let ns = if self.namespace.is_empty() {
            String::new()
        } else {
            format!("{}/", self.namespace)
        };
        let sub = self
            .sub
            .as_deref()
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        let gv = if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        };
        format!(
            "{} {gv} {}{sub} {ns}{}",
            self.method, self.plural, self.name
        )
    }

    fn is_apply(&self) -> bool {
        self.content_type
            .starts_with("application/apply-patch+yaml")
    }

    fn json_body(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "{}: body is not JSON ({e}): {}",
                self.what(),
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The object kube-sim answered (for a patch: as stored after the write).
    fn stored(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.answer).map_err(|e| {
            format!(
                "{}: answer is not JSON ({e}): {}",
                self.what(),
                String::from_utf8_lossy(&self.answer)
            )
        })
    }
}

/// Every create, update and patch in the transcripts, each with its answer, in each
/// connection's order.
fn writes(connections: &Transcripts) -> Vec<Write> {
    let mut out = Vec::new();
    for t in connections.lock().unwrap().iter() {
        let t = t.lock().unwrap();
        let (mut at_req, mut at_resp) = (0, 0);
        while let Some((req, next)) = message(&t.sent, at_req, true) {
            at_req = next;
            // The answer (interim 1xx answers skipped).
            let answer = loop {
                match message(&t.received, at_resp, false) {
                    Some((resp, next)) => {
                        at_resp = next;
                        let code: u16 = resp
                            .start
                            .split(' ')
                            .nth(1)
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(0);
                        if code >= 200 {
                            break Some((code, resp.body));
                        }
                    }
                    None => break None,
                }
            };
            let mut parts = req.start.split(' ');
            let method = parts.next().unwrap_or_default().to_owned();
            let target = parts.next().unwrap_or_default();
            if !matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
                continue;
            }
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let query: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            let (group, version, rest) = match segs.as_slice() {
                ["api", v, rest @ ..] => ("", *v, rest),
                ["apis", g, v, rest @ ..] => (*g, *v, rest),
                _ => ("?", "?", &segs[..]),
            };
            let (namespace, rest) = match rest {
                ["namespaces", ns, rest @ ..] if !rest.is_empty() => (*ns, rest),
                _ => ("", rest),
            };
            let (code, answer) = answer.unwrap_or((0, Vec::new()));
            out.push(Write {
                method,
                group: group.to_owned(),
                version: version.to_owned(),
                namespace: namespace.to_owned(),
                plural: rest.first().copied().unwrap_or_default().to_owned(),
                name: rest.get(1).copied().unwrap_or_default().to_owned(),
                sub: rest.get(2).map(|s| (*s).to_owned()),
                query,
                content_type: req.header("content-type").unwrap_or_default().to_owned(),
                body: req.body,
                status: code,
                answer,
            });
        }
    }
    out
}

/// The field manager of every server-side apply the controller sends.
const FIELD_MANAGER: &str = "firefly";

/// What is wrong with the transport of a server-side apply: its Content-Type, its
/// `fieldManager`, and `force` (every apply of the product is forced: its own fields only, the
/// resourceVersion precondition keeps two writers apart).
fn apply_transport_problems(w: &Write) -> Vec<String> {
    let mut out = Vec::new();
    if w.method != "PATCH" || !w.is_apply() {
        out.push(format!(
            "{}: not a server-side apply (Content-Type {:?})",
            w.what(),
            w.content_type
        ));
    }
    if w.query.get("fieldManager").map(String::as_str) != Some(FIELD_MANAGER) {
        out.push(format!(
            "{}: fieldManager {:?}, expected {FIELD_MANAGER:?}",
            w.what(),
            w.query.get("fieldManager")
        ));
    }
    if w.query.get("force").map(String::as_str) != Some("true") {
        out.push(format!(
            "{}: force {:?}, expected \"true\"",
            w.what(),
            w.query.get("force")
        ));
    }
    out
}

#[test]
fn the_judge_refuses_unknown_fields_and_cannot_be_read_as_a_verdict_when_it_fails() {
    let t = "2026-12-04T10:00:00Z";
    let condition = |type_: &str| {
        json!({"type": type_, "status": "True", "reason": "R", "message": "m",
               "lastTransitionTime": t})
    };
    let csr = json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": "csr-1", "resourceVersion": "7"},
        "status": {"certificate": "Q0VSVA==", "conditions": [condition("Failed")]},
    });
    let pcr = |version: &str| {
        json!({
            "apiVersion": format!("certificates.k8s.io/{version}"), "kind": "PodCertificateRequest",
            "metadata": {"name": "req-1", "namespace": "sandbox", "resourceVersion": "7"},
            "status": {"conditions": [condition("Issued")], "certificateChain": "PEM",
                       "notBefore": t, "notAfter": t, "beginRefreshAt": t},
        })
    };
    let ctb = json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "ClusterTrustBundle",
        "metadata": {"name": "example.com:s:root", "labels": {"a": "b"}},
        "spec": {"signerName": "example.com/s", "trustBundle": "PEM"},
    });
    let sar = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "metadata": {},
        "spec": {"user": "u", "groups": ["g"], "resourceAttributes": {
            "group": "firefly.venafi.com", "resource": "signers", "verb": "reference",
            "namespace": "sandbox", "name": "sb"}},
    });
    let series = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "series": {"count": 2, "lastObservedTime": "2026-12-04T10:00:00.123456Z"},
    });
    let good = [
        item("csr status apply", csr.clone(), true),
        item("pcr v1 status apply", pcr("v1"), true),
        item("pcr v1beta1 status apply", pcr("v1beta1"), true),
        item("ctb apply", ctb.clone(), false),
        item("sar create", sar.clone(), false),
        item("event series patch", series.clone(), true),
    ];
    let (problems, errors) = judge_all(&good, "1.37.0");
    assert_eq!((problems, errors), (vec![], vec![]));

    // An unknown field in each kind's body is refused, as is a value of the wrong format; a
    // partial body passes only as partial.
    let mut csr_unknown = csr.clone();
    csr_unknown["status"]["conditions"][0]["observedGeneration"] = json!(1);
    let mut csr_not_base64 = csr.clone();
    csr_not_base64["status"]["certificate"] = json!("not base64!");
    let mut pcr_unknown = pcr("v1");
    pcr_unknown["status"]["bogus"] = json!(true);
    let mut pcr_beta_unknown = pcr("v1beta1");
    pcr_beta_unknown["status"]["conditions"][0]["bogus"] = json!(true);
    let mut ctb_unknown = ctb.clone();
    ctb_unknown["spec"]["bogus"] = json!(true);
    let mut ctb_incomplete = ctb.clone();
    ctb_incomplete["spec"]
        .as_object_mut()
        .unwrap()
        .remove("trustBundle");
    let mut sar_unknown = sar.clone();
    sar_unknown["spec"]["resourceAttributes"]["bogus"] = json!(true);
    let mut series_unknown = series.clone();
    series_unknown["series"]["bogus"] = json!(1);
    let mut series_bad_time = series.clone();
    series_bad_time["series"]["lastObservedTime"] = json!("yesterday");
    let bad = [
        item("csr", csr_unknown, true),
        item("csr", csr_not_base64, true),
        item("pcr v1", pcr_unknown, true),
        item("pcr v1beta1", pcr_beta_unknown, true),
        item("ctb", ctb_unknown, false),
        item("ctb", ctb_incomplete, false),
        item("csr apply body as a whole object", csr, false),
        item("sar", sar_unknown, false),
        item("series", series_unknown, true),
        item("series", series_bad_time, true),
    ];
    let verdicts = judge(&bad, "1.37.0");
    let expected = [
        "observedGeneration",
        "is not a 'byte'",
        "'bogus' was unexpected",
        "'bogus' was unexpected",
        "'bogus' was unexpected",
        "'trustBundle' is a required property",
        "'spec' is a required property",
        "'bogus' was unexpected",
        "'bogus' was unexpected",
        "is not a 'date-time'",
    ];
    for ((i, verdict), needle) in bad.iter().zip(&verdicts).zip(expected) {
        let problems = verdict
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", i.label));
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{}: {needle:?} not among {problems:?}",
            i.label
        );
    }

    // What cannot be judged is an error, never a verdict: a merge patch without kind (as the
    // recorder sends it), a kind without an upstream schema.
    let verdicts = judge(
        &[
            item("raw series patch", json!({"series": {"count": 2}}), true),
            item(
                "unknown kind",
                json!({"apiVersion": "example.com/v1", "kind": "Nothing"}),
                false,
            ),
        ],
        "1.37.0",
    );
    assert!(
        verdicts[0]
            .as_ref()
            .is_err_and(|e| e.contains("apiVersion and kind")),
        "{verdicts:?}"
    );
    assert!(
        verdicts[1]
            .as_ref()
            .is_err_and(|e| e.contains("no upstream schema")),
        "{verdicts:?}"
    );

    // The transport check refuses an apply without force, under another manager, or sent as a
    // merge patch.
    let apply = |content_type: &str, query: &[(&str, &str)]| Write {
        method: "PATCH".into(),
        group: "certificates.k8s.io".into(),
        version: "v1".into(),
        namespace: String::new(),
        plural: "certificatesigningrequests".into(),
        name: "csr-1".into(),
        sub: Some("status".into()),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        content_type: content_type.into(),
        body: Vec::new(),
        status: 200,
        answer: Vec::new(),
    };
    let ssa = "application/apply-patch+yaml";
    assert!(
        apply_transport_problems(&apply(
            ssa,
            &[("fieldManager", "firefly"), ("force", "true")]
        ))
        .is_empty()
    );
    for w in [
        apply(ssa, &[("fieldManager", "firefly")]),
        apply(ssa, &[("fieldManager", "kubectl"), ("force", "true")]),
        apply(
            "application/merge-patch+json",
            &[("fieldManager", "firefly"), ("force", "true")],
        ),
    ] {
        assert_eq!(apply_transport_problems(&w).len(), 1, "{}", w.what());
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario: every front door and the trust-bundle publisher, every outcome.
// ---------------------------------------------------------------------------------------------

/// The pod door: the shipped seed's `istio-mtls` policy (P-256 or RSA-2048, one hour) for pods
/// of every namespace, its roots published as a ClusterTrustBundle.
fn pod_signers() -> String {
    format!(
        "{}        clusterTrustBundle: true\n",
        pods::signer_config()
    )
}

const WORKLOAD: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";
const SANDBOX_SIGNER: &str = "issuers.firefly.venafi.com/sandbox.sb";
const WAIT: Duration = Duration::from_secs(30);

fn stored_csr(env: &Env, name: &str) -> Value {
    env.sim
        .object(
            "certificates.k8s.io",
            "certificatesigningrequests",
            "",
            name,
        )
        .unwrap_or(Value::Null)
}

/// Creates and approves a CSR as its admin; returns its name once `done` holds for it.
async fn csr_answered(
    env: &Env,
    api: &Api<CertificateSigningRequest>,
    signer: &str,
    done: impl Fn(&Value) -> bool,
) -> String {
    let key = support::csr::p256();
    let pem = support::csr::RawCsr::istio(&key, WORKLOAD).pem(&key);
    let request = istiod::csr(signer, &pem, &istiod::WORKLOAD_USAGES, Some(3600));
    let name = api
        .create(&PostParams::default(), &request)
        .await
        .expect("CSR created")
        .metadata
        .name
        .unwrap();
    istiod::set_approval(api, &name, "Approved")
        .await
        .expect("CSR approved");
    let answered = kube_sim::wait_for(PATIENCE, || async { done(&stored_csr(env, &name)) }).await;
    answered.unwrap_or_else(|_| {
        panic!(
            "CSR {name} for {signer} not answered: {:#}",
            stored_csr(env, &name)
        )
    });
    name
}

/// cert-manager's door: Issued (Issuer and ClusterIssuer), Denied, Pending and every kind of
/// Failed.
async fn certificate_requests(env: &Env) {
    let request = |spiffe: &str| {
        let (_key, csr) = CsrSpec::workload(KeyKind::P256, spiffe).build();
        RequestBuilder::istio("firefly-istio", &csr, spiffe)
    };
    let (_, issued) = env.issue_workload(WORKLOAD).await;
    assert!(!decoded(&issued, "certificate").is_empty());
    let mut cluster = request(WORKLOAD);
    cluster.issuer_name = "firefly-cluster".into();
    cluster.issuer_kind = Some("ClusterIssuer".into());
    let name = env.create_request(&cluster).await;
    env.approve(NS, &name).await;
    env.wait_ready_reason(NS, &name, "Issued").await;

    let name = env.create_request(&request(WORKLOAD)).await;
    env.set_approval(NS, &name, "Denied").await;
    env.wait_ready_reason(NS, &name, "Denied").await;

    let mut missing = request(WORKLOAD);
    missing.issuer_name = "absent".into();
    let name = env.create_request(&missing).await;
    env.approve(NS, &name).await;
    env.wait_ready_reason(NS, &name, "Pending").await;

    let mut failures: Vec<(&str, RequestBuilder)> = Vec::new();
    let mut stranger = request(WORKLOAD);
    stranger.username = Some("system:serviceaccount:sandbox:stranger".into());
    failures.push(("requester not allowed", stranger));
    failures.push((
        "unknown policy",
        request(WORKLOAD).annotation("firefly.venafi.com/policy-name", Some("no-such-policy")),
    ));
    failures.push((
        "outside the policy",
        request("spiffe://evil.example/ns/sandbox/sa/httpbin"),
    ));
    let mut garbage = request(WORKLOAD);
    garbage.csr_pem =
        "-----BEGIN CERTIFICATE REQUEST-----\nnot a csr\n-----END CERTIFICATE REQUEST-----\n"
            .into();
    failures.push(("undecodable CSR", garbage));
    let mut ca = request(WORKLOAD);
    ca.is_ca = Some(true);
    failures.push(("isCA", ca));
    let mut short = request(WORKLOAD);
    short.duration = Some("1s".into());
    failures.push(("duration below the minimum", short));
    for (what, req) in &failures {
        let name = env.create_request(req).await;
        env.approve(NS, &name).await;
        let obj = env.wait_ready_reason(NS, &name, "Failed").await;
        assert!(
            obj.pointer("/status/failureTime").is_some(),
            "{what}: no failureTime"
        );
    }
}

/// The CSR door: issued by a ClusterIssuer, issued by a namespaced Issuer (after the
/// `reference` SubjectAccessReview), Failed for a signer name without a namespace.
async fn certificate_signing_requests(env: &Env) {
    let admin: Api<CertificateSigningRequest> = Api::all(env.client.clone());
    let certificate = |o: &Value| o["status"].get("certificate").is_some();
    csr_answered(env, &admin, istiod::CLUSTER_SIGNER, certificate).await;
    csr_answered(env, &admin, SANDBOX_SIGNER, certificate).await;
    let name = csr_answered(
        env,
        &admin,
        "issuers.firefly.venafi.com/no-namespace",
        |o| condition(o, "Failed").is_some(),
    )
    .await;
    let failed = stored_csr(env, &name);
    assert_eq!(
        condition(&failed, "Failed").unwrap()["reason"],
        "InvalidSignerName",
        "{failed:#}"
    );
}

/// The pod door, through the version the release serves: a kubelet's request Issued, and one
/// Denied for `refused`, a key type istio-mtls does not offer (P-256 and RSA-2048 only).
async fn pod_certificate_requests(env: &Env, refused: KeyType) {
    pods::put_pods(&env.sim, 0..1, 1).expect("pod-0");
    let pod = env
        .sim
        .object("", "pods", pods::NAMESPACE, "pod-0")
        .unwrap();
    let kubelet = env
        .sim
        .kubelet(pod["spec"]["nodeName"].as_str().unwrap())
        .await
        .unwrap();
    let ask = |key| {
        let kubelet = kubelet.clone();
        async move {
            kubelet
                .request(
                    pods::NAMESPACE,
                    "pod-0",
                    &PodCertificate::new(pods::SIGNER, key),
                    WAIT,
                )
                .await
                .expect("the kubelet's request is answered")
        }
    };
    let out = ask(KeyType::EcdsaP256).await;
    assert!(matches!(out, Outcome::Issued { .. }), "{out:?}");
    let out = ask(refused).await;
    assert!(
        matches!(&out, Outcome::Denied { reason, .. } if reason == "UnsupportedKeyType"),
        "{out:?}"
    );
}

/// Stops the controller `Env` started and starts it again with its client through a [`relay`],
/// with the ClusterTrustBundle publisher as `firefly run` starts it (while this replica leads):
/// from here on every byte they send is kept.
async fn restart_through_relay(
    env: &mut Env,
) -> (Relay, firefly::trust_bundle::publish::Publisher) {
    env.stop_controller().await;
    let relay = relay(env.sim.addr()).await;
    let mut config = env.sim.kube_config().await.unwrap();
    config.cluster_url = format!("http://{}", relay.addr).parse().unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let handle = Controller::start_with(
        &env.config,
        client.clone(),
        env.authority.clone(),
        StartOptions {
            identity: Some("replica-a".to_owned()),
            ..StartOptions::default()
        },
    )
    .await
    .expect("controller starts");
    let publisher = firefly::trust_bundle::publish::start_for(
        &env.config.controller.pod_certificates,
        client,
        env.bootstrap.trust_anchors_der(),
        firefly::admin::ReadinessDetails::default(),
        handle.leadership(),
    )
    .expect("a signer with clusterTrustBundle");
    env.controller = Some(handle);
    (relay, publisher)
}

async fn wait_for_bundle(env: &Env) {
    let bundle = firefly::trust_bundle::bundle_name(pods::SIGNER);
    kube_sim::wait_for(PATIENCE, || async {
        env.sim
            .object("certificates.k8s.io", "clustertrustbundles", "", &bundle)
            .is_some()
    })
    .await
    .expect("the ClusterTrustBundle is published");
}

/// Stops the publisher and the controller, then reads what they sent.
async fn stop_and_read(
    env: &mut Env,
    relay: Relay,
    publisher: firefly::trust_bundle::publish::Publisher,
) -> Vec<Write> {
    drop(publisher);
    env.stop_controller().await;
    writes(&relay.connections)
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn pcr_seen(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(v, t)| ((*v).to_owned(), (*t).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_the_controller_writes_passes_upstream_schemas() {
    let mut env = Env::start_with(Options {
        leader_election: true,
        authenticate: true,
        certificate_signing_requests: true,
        allowed_requesters: vec![ISTIO_CSR_SA.to_owned(), "kubernetes-admin".to_owned()],
        pod_certificates: Some(pod_signers()),
        kubernetes_release: Some(Release::V1_37),
        ..Options::default()
    })
    .await;
    let (relay, publisher) = restart_through_relay(&mut env).await;

    env.ready_issuer(None, "firefly-cluster", json!({})).await;
    env.ready_issuer(
        None,
        "istio-ca",
        json!({"defaultPolicyName": POLICY, "identityNamespaces": ["*"]}),
    )
    .await;
    env.ready_issuer(Some("sandbox"), "sb", json!({"defaultPolicyName": POLICY}))
        .await;
    certificate_requests(&env).await;
    certificate_signing_requests(&env).await;
    pod_certificate_requests(&env, KeyType::EcdsaP384).await;
    wait_for_bundle(&env).await;

    // A spec change makes the issuer's Ready condition written again, with the same event: a
    // repeat, sent as a merge patch of the first Event's series.
    let ar = ApiResource {
        group: GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{GROUP}/v1alpha1"),
        kind: "ClusterIssuer".into(),
        plural: "clusterissuers".into(),
    };
    Api::<DynamicObject>::all_with(env.client.clone(), &ar)
        .patch(
            "istio-ca",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"trustDomain": "cluster.local"}})),
        )
        .await
        .expect("spec changed");
    let series = kube_sim::wait_for(PATIENCE, || async {
        env.events_for("default", "istio-ca")
            .await
            .iter()
            .any(|e| e.series.as_ref().is_some_and(|s| s.count >= 2))
    })
    .await;
    assert!(
        series.is_ok(),
        "no series on istio-ca's event: {:#?}",
        env.events_for("default", "istio-ca").await
    );
    let writes = stop_and_read(&mut env, relay, publisher).await;

    let seen = judge_writes(&writes, "1.37.0");
    assert_eq!(
        seen.ready_reasons,
        set(&["Denied", "Failed", "Issued", "Pending"]),
        "every CertificateRequest outcome"
    );
    assert!(
        seen.issuer_applies >= 4,
        "issuer applies: {}",
        seen.issuer_applies
    );
    assert!(
        seen.csr.is_superset(&set(&["certificate", "Failed"])),
        "CSR status applies: {:?}",
        seen.csr
    );
    assert_eq!(
        seen.pcr,
        pcr_seen(&[("v1", "Issued"), ("v1", "Denied")]),
        "PodCertificateRequest status applies"
    );
    assert_eq!(
        seen.bundles,
        set(&[&format!(
            "v1 {}",
            firefly::trust_bundle::bundle_name(pods::SIGNER)
        )]),
        "the ClusterTrustBundle apply"
    );
    assert!(
        seen.reviews.iter().any(|r| {
            r.pointer("/spec/resourceAttributes/namespace") == Some(&json!("sandbox"))
                && r.pointer("/spec/resourceAttributes/name") == Some(&json!("sb"))
        }),
        "a SubjectAccessReview for the namespaced Issuer: {:?}",
        seen.reviews
    );
    assert!(
        seen.event_kinds.is_superset(&set(&[
            "CertificateRequest",
            "CertificateSigningRequest",
            "PodCertificateRequest",
            "ClusterIssuer",
        ])),
        "Events about every door's objects: {:?}",
        seen.event_kinds
    );
    assert!(seen.series_patches >= 1, "a series patch was judged");
    assert!(seen.leases >= 1, "Lease writes were judged");
}

/// Release 1.35 serves PodCertificateRequest and ClusterTrustBundle through v1beta1 only (a
/// kubelet's request carries `pkixPublicKey` and a proof of possession): the pod door's answers
/// and the bundle go through v1beta1, judged by 1.35's published schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1beta1_pod_certificate_and_trust_bundle_writes_pass_the_1_35_schemas() {
    let mut env = Env::start_with(Options {
        leader_election: true,
        authenticate: true,
        pod_certificates: Some(pod_signers()),
        kubernetes_release: Some(Release::V1_35),
        ..Options::default()
    })
    .await;
    let (relay, publisher) = restart_through_relay(&mut env).await;
    // RSA3072: a 1.35 kubelet here cannot prove possession of a P-384 key.
    pod_certificate_requests(&env, KeyType::Rsa3072).await;
    wait_for_bundle(&env).await;
    let writes = stop_and_read(&mut env, relay, publisher).await;

    let seen = judge_writes(&writes, "1.35.0");
    assert_eq!(
        seen.pcr,
        pcr_seen(&[("v1beta1", "Issued"), ("v1beta1", "Denied")]),
        "PodCertificateRequest status applies"
    );
    assert_eq!(
        seen.bundles,
        set(&[&format!(
            "v1beta1 {}",
            firefly::trust_bundle::bundle_name(pods::SIGNER)
        )]),
        "the ClusterTrustBundle apply"
    );
    assert!(
        seen.event_kinds.contains("PodCertificateRequest"),
        "{:?}",
        seen.event_kinds
    );
}

/// What was judged, for the coverage assertions.
#[derive(Default)]
struct Seen {
    ready_reasons: BTreeSet<String>,
    issuer_applies: usize,
    /// `certificate` and condition types of CSR status applies.
    csr: BTreeSet<String>,
    /// (version, condition type) of PodCertificateRequest status applies.
    pcr: BTreeSet<(String, String)>,
    bundles: BTreeSet<String>,
    reviews: Vec<Value>,
    /// `regarding.kind` of every Event created.
    event_kinds: BTreeSet<String>,
    series_patches: usize,
    leases: usize,
}

/// Judges every write of the controller by the schemas of Kubernetes `release`: bodies, the
/// objects as stored after each patch, the transport of every apply; fails on any problem, on a
/// write it does not know and on anything the judge could not judge. Returns what was judged,
/// for the callers' coverage assertions.
fn judge_writes(writes: &[Write], release: &str) -> Seen {
    let cr_schema = upstream_certificate_request_schema();
    let ours = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/firefly.yaml"))
        .expect("crds/firefly.yaml");
    let issuer_schema = schema_judge::crd_schema(&ours, "issuers.firefly.venafi.com", "v1alpha1");
    let cluster_issuer_schema =
        schema_judge::crd_schema(&ours, "clusterissuers.firefly.venafi.com", "v1alpha1");

    let mut seen = Seen::default();
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let conditions = |b: &Value| -> Vec<Value> {
        b.pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for w in writes {
        let what = w.what();
        // 409 (a stale resourceVersion, an existing Lease) is the protocol; 0 is a write whose
        // answer was not read before the controller stopped. Either way the body is judged.
        let answered = (200..300).contains(&w.status);
        if !answered && !matches!(w.status, 0 | 409) {
            problems.push(format!(
                "{what}: refused by kube-sim with {}: {} (body {})",
                w.status,
                String::from_utf8_lossy(&w.answer),
                String::from_utf8_lossy(&w.body)
            ));
            continue;
        }
        let body = match w.json_body() {
            Ok(b) => b,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        // The object as stored after a patch.
        let stored = if w.method == "PATCH" && answered {
            match w.stored() {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push(e);
                    None
                }
            }
        } else {
            None
        };
        match (
            w.method.as_str(),
            w.group.as_str(),
            w.plural.as_str(),
            w.sub.as_deref(),
        ) {
            ("PATCH", "cert-manager.io", "certificaterequests", Some("status")) => {
                problems.extend(apply_transport_problems(w));
                for c in conditions(&body) {
                    if c["type"] == "Ready" {
                        seen.ready_reasons
                            .insert(c["reason"].as_str().unwrap_or("").to_owned());
                    }
                }
                for (label, obj) in [("body", Some(&body)), ("stored", stored.as_ref())] {
                    for v in obj
                        .map(|o| schema_judge::violations(&cr_schema, o))
                        .unwrap_or_default()
                    {
                        problems.push(format!("{what} ({label}): {v}"));
                    }
                }
            }
            ("PATCH", GROUP, plural @ ("issuers" | "clusterissuers"), Some("status")) => {
                problems.extend(apply_transport_problems(w));
                seen.issuer_applies += 1;
                let schema = if plural == "issuers" {
                    &issuer_schema
                } else {
                    &cluster_issuer_schema
                };
                for (label, obj) in [("body", Some(&body)), ("stored", stored.as_ref())] {
                    for v in obj
                        .map(|o| schema_judge::violations(schema, o))
                        .unwrap_or_default()
                    {
                        problems.push(format!("{what} ({label}): {v}"));
                    }
                }
            }
            (
                "PATCH",
                "certificates.k8s.io",
                plural @ ("certificatesigningrequests" | "podcertificaterequests"),
                Some("status"),
            ) => {
                problems.extend(apply_transport_problems(w));
                for c in conditions(&body) {
                    let t = c["type"].as_str().unwrap_or("").to_owned();
                    if plural == "podcertificaterequests" {
                        seen.pcr.insert((w.version.clone(), t));
                    } else {
                        seen.csr.insert(t);
                    }
                }
                if body.pointer("/status/certificate").is_some() {
                    seen.csr.insert("certificate".into());
                }
                items.push(item(&format!("{what} (apply body)"), body, true));
                if let Some(s) = stored {
                    items.push(item(&format!("{what} (stored)"), s, false));
                }
            }
            ("PATCH", "certificates.k8s.io", "clustertrustbundles", None) => {
                problems.extend(apply_transport_problems(w));
                seen.bundles.insert(format!("{} {}", w.version, w.name));
                // The apply of a whole bundle: judged as a whole object.
                items.push(item(&format!("{what} (apply body)"), body, false));
                if let Some(s) = stored {
                    items.push(item(&format!("{what} (stored)"), s, false));
                }
            }
            ("PATCH", "events.k8s.io", "events", None) => {
                if !w.content_type.starts_with("application/merge-patch+json") {
                    problems.push(format!("{what}: an event patch as {:?}", w.content_type));
                }
                let keys: Vec<&String> = body
                    .as_object()
                    .map(|o| o.keys().collect())
                    .unwrap_or_default();
                if keys != ["series"] {
                    problems.push(format!(
                        "{what}: a series patch changes only series: {body}"
                    ));
                }
                seen.series_patches += 1;
                // A merge patch names no kind: it is a partial object of the kind the URL names.
                let mut partial = body;
                partial["apiVersion"] = json!(format!("{}/{}", w.group, w.version));
                partial["kind"] = json!("Event");
                items.push(item(&format!("{what} (merge patch)"), partial, true));
                if let Some(s) = stored {
                    items.push(item(&format!("{what} (stored)"), s, false));
                }
            }
            ("POST", "events.k8s.io", "events", None) => {
                if let Some(k) = body.pointer("/regarding/kind").and_then(Value::as_str) {
                    seen.event_kinds.insert(k.to_owned());
                }
                items.push(item(&format!("{what} (create)"), body, false));
            }
            ("POST" | "PUT", "coordination.k8s.io", "leases", None) => {
                seen.leases += 1;
                items.push(item(&format!("{what} (body)"), body, false));
            }
            ("POST", "authorization.k8s.io", "subjectaccessreviews", None) => {
                seen.reviews.push(body.clone());
                items.push(item(&format!("{what} (create)"), body, false));
            }
            _ => problems.push(format!(
                "{what}: a write this test does not judge (Content-Type {:?})",
                w.content_type
            )),
        }
    }

    let (found, errors) = judge_all(&items, release);
    assert!(
        errors.is_empty(),
        "the judge could not judge these writes (no verdict either way):\n{}",
        errors.join("\n")
    );
    problems.extend(found);
    assert!(
        problems.is_empty(),
        "writes upstream's schemas (or kube-sim) refuse:\n{}",
        problems.join("\n")
    );
    seen
}
