//! End-to-end support shared by the demo, the e2e bench and the reliability tests: istio-agent
//! shaped CSRs, istio-csr shaped CertificateRequests, cert-manager's approval, chain checks,
//! latency statistics, resident-memory readings and hand-written SVG charts. It drives the real
//! components; it never stands in for one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use firefly::crd::{
    CertificateRequest, CertificateRequestCondition, CertificateRequestSpec,
    CertificateRequestStatus, IDENTITIES_ANNOTATION, IssuerRef, POLICY_NAME_ANNOTATION,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

pub use crate::SHIPPED_SEED;
pub use crate::istio::{
    GROUP, ISSUER_NAME, ISTIO_CSR_DURATION, ISTIO_CSR_NAMESPACE, ISTIO_CSR_USERNAME,
    ISTIO_MTLS_POLICY, KeyKind, TRUST_DOMAIN,
};

/// A pool of workload keys. RSA-2048 generation costs tens of milliseconds, so the pool holds a
/// few keys of each kind and workloads share them round-robin (each CSR is still its own,
/// freshly signed request with its own identity).
pub struct KeyPool {
    rsa: Vec<rcgen::KeyPair>,
    p256: Vec<rcgen::KeyPair>,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool")
            .field("rsa", &self.rsa.len())
            .field("p256", &self.p256.len())
            .finish()
    }
}

impl KeyPool {
    /// Generates `rsa` RSA-2048 keys (on every core) and `p256` P-256 keys.
    ///
    /// # Errors
    /// Key generation failure.
    pub fn generate(rsa: usize, p256: usize) -> anyhow::Result<KeyPool> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(rsa.max(1));
        let per_thread = rsa.div_ceil(threads);
        let rsa_keys = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let n = per_thread.min(rsa.saturating_sub(t * per_thread));
                    s.spawn(move || {
                        (0..n)
                            .map(|_| {
                                rcgen::KeyPair::generate_rsa_for(
                                    &rcgen::PKCS_RSA_SHA256,
                                    rcgen::RsaKeySize::_2048,
                                )
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut keys = Vec::with_capacity(rsa);
            for h in handles {
                let part = h
                    .join()
                    .map_err(|_| anyhow::anyhow!("an RSA key generation thread panicked"))?;
                keys.extend(part.context("RSA-2048 key generation")?);
            }
            anyhow::Ok(keys)
        })?;
        let p256_keys = (0..p256)
            .map(|_| rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256))
            .collect::<Result<Vec<_>, _>>()
            .context("P-256 key generation")?;
        Ok(KeyPool {
            rsa: rsa_keys,
            p256: p256_keys,
        })
    }

    /// The key for workload `i`: even workloads RSA-2048, odd ones P-256 (when both exist).
    pub fn key_for(&self, i: usize) -> (KeyKind, &rcgen::KeyPair) {
        let use_rsa = self.p256.is_empty() || (!self.rsa.is_empty() && i.is_multiple_of(2));
        if use_rsa {
            (KeyKind::Rsa2048, &self.rsa[(i / 2) % self.rsa.len()])
        } else {
            (KeyKind::P256, &self.p256[(i / 2) % self.p256.len()])
        }
    }

    /// Number of RSA keys.
    pub fn rsa_len(&self) -> usize {
        self.rsa.len()
    }

    /// Number of P-256 keys.
    pub fn p256_len(&self) -> usize {
        self.p256.len()
    }
}

/// The SPIFFE ID of workload `i` (`spiffe://cluster.local/ns/ns-<i % 50>/sa/workload-<i>`).
pub fn workload_spiffe_id(i: usize) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/ns-{}/sa/workload-{i}", i % 50)
}

/// A CSR of istio-agent's shape: subject `O=` (one empty Organization), one critical
/// subjectAltName extension holding exactly one URI, no other extension.
///
/// # Errors
/// An identity that is not IA5 or a signing failure.
pub fn istio_agent_csr_pem(key: &rcgen::KeyPair, spiffe_id: &str) -> anyhow::Result<String> {
    if !spiffe_id.is_ascii() {
        bail!("identity {spiffe_id:?} is not ASCII (IA5String)");
    }
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "");
    // rcgen marks SAN critical only for an empty subject; istio's subject holds `O=`, and istio
    // still marks it critical, so the extension is written by hand.
    let mut san = rcgen::CustomExtension::from_oid_content(
        &[2, 5, 29, 17],
        der_general_names_one_uri(spiffe_id.as_bytes()),
    );
    san.set_criticality(true);
    params.custom_extensions.push(san);
    let csr = params
        .serialize_request(key)
        .context("signing the workload CSR")?;
    csr.pem().context("PEM-encoding the workload CSR")
}

/// DER of `GeneralNames ::= SEQUENCE { [6] IA5String uri }`.
fn der_general_names_one_uri(uri: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x86];
    der_push_len(&mut inner, uri.len());
    inner.extend_from_slice(uri);
    let mut out = vec![0x30];
    der_push_len(&mut out, inner.len());
    out.extend_from_slice(&inner);
    out
}

fn der_push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A CertificateRequest exactly as istio-csr creates it for a workload (generateName
/// `istio-csr-`, namespace istio-system, identities and policy annotations, 1h, client+server
/// auth, istio-csr's username as cert-manager's webhook would set it).
pub fn istio_csr_request(csr_pem: &str, spiffe_id: &str, issuer: &str) -> CertificateRequest {
    let annotations = BTreeMap::from([
        (IDENTITIES_ANNOTATION.to_owned(), spiffe_id.to_owned()),
        (
            POLICY_NAME_ANNOTATION.to_owned(),
            ISTIO_MTLS_POLICY.to_owned(),
        ),
    ]);
    CertificateRequest {
        metadata: ObjectMeta {
            generate_name: Some("istio-csr-".into()),
            namespace: Some(ISTIO_CSR_NAMESPACE.into()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: CertificateRequestSpec {
            request: base64::engine::general_purpose::STANDARD.encode(csr_pem),
            issuer_ref: IssuerRef {
                name: issuer.into(),
                kind: Some("Issuer".into()),
                group: Some(GROUP.into()),
            },
            duration: Some(ISTIO_CSR_DURATION.into()),
            is_ca: None,
            usages: Some(vec!["client auth".into(), "server auth".into()]),
            username: Some(ISTIO_CSR_USERNAME.into()),
            uid: Some("6f1b7d3e-istio-csr".into()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:istio-system".into(),
                "system:authenticated".into(),
            ]),
            extra: None,
        },
        status: None,
    }
}

/// The `Approved=True` condition cert-manager's approver writes.
pub fn approved_condition(now: SystemTime) -> CertificateRequestCondition {
    CertificateRequestCondition {
        type_: "Approved".into(),
        status: "True".into(),
        reason: Some("cert-manager.io".into()),
        message: Some("Certificate request has been approved by cert-manager.io".into()),
        last_transition_time: Some(Time(jiff::Timestamp::try_from(now).unwrap_or_default())),
    }
}

/// The status patch with which cert-manager's approver approves a request (a merge patch of the
/// `/status` subresource; the request has no conditions yet when it is approved).
pub fn approval_patch(now: SystemTime) -> serde_json::Value {
    serde_json::json!({
        "status": { "conditions": [approved_condition(now)] }
    })
}

/// Approves `name` in istio-system the way cert-manager's approver does.
///
/// # Errors
/// The API call's error.
pub async fn approve(
    api: &kube::Api<CertificateRequest>,
    name: &str,
) -> anyhow::Result<CertificateRequest> {
    let patch = kube::api::Patch::Merge(approval_patch(SystemTime::now()));
    api.patch_status(name, &kube::api::PatchParams::default(), &patch)
        .await
        .with_context(|| format!("approving CertificateRequest {name}"))
}

/// How a request ended, read from its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No terminal state yet.
    Open,
    /// `Ready=True` with a certificate.
    Issued,
    /// `Ready=False` with reason `Failed` or `Denied`.
    Failed {
        /// The reason.
        reason: String,
        /// The message.
        message: String,
    },
}

/// The outcome of a request's status.
pub fn outcome(status: Option<&CertificateRequestStatus>) -> Outcome {
    let Some(status) = status else {
        return Outcome::Open;
    };
    ready_outcome(status.conditions.iter().flatten().map(|c| {
        (
            c.type_.as_str(),
            c.status.as_str(),
            c.reason.as_deref(),
            c.message.as_deref(),
        )
    }))
}

/// [`outcome`]'s rule over a status's conditions as (type, status, reason, message): the first
/// `Ready` condition decides.
fn ready_outcome<'a>(
    conditions: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>, Option<&'a str>)>,
) -> Outcome {
    let ready = conditions.into_iter().find(|(t, ..)| *t == "Ready");
    match ready {
        Some((_, "True", ..)) => Outcome::Issued,
        Some((_, "False", reason @ Some("Failed" | "Denied"), message)) => Outcome::Failed {
            reason: reason.unwrap_or_default().to_owned(),
            message: message.unwrap_or_default().to_owned(),
        },
        _ => Outcome::Open,
    }
}

/// The decoded PEM chain of `status.certificate` and the root PEM of `status.ca`.
///
/// # Errors
/// Missing fields or bad base64.
pub fn issued_pems(status: &CertificateRequestStatus) -> anyhow::Result<(String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let chain = status
        .certificate
        .as_deref()
        .context("status.certificate is empty")?;
    let ca = status.ca.as_deref().context("status.ca is empty")?;
    let chain = String::from_utf8(b64.decode(chain).context("status.certificate base64")?)
        .context("status.certificate is not UTF-8 PEM")?;
    let ca = String::from_utf8(b64.decode(ca).context("status.ca base64")?)
        .context("status.ca is not UTF-8 PEM")?;
    Ok((chain, ca))
}

/// Every `CERTIFICATE` block of a PEM string, as DER.
///
/// # Errors
/// Unparseable PEM or a block that is not a certificate.
pub fn pem_certificates(pem_text: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let blocks = pem::parse_many(pem_text).context("parsing PEM")?;
    blocks
        .into_iter()
        .map(|b| {
            if b.tag() == "CERTIFICATE" {
                Ok(b.into_contents())
            } else {
                bail!("unexpected PEM block {:?} in a chain", b.tag())
            }
        })
        .collect()
}

/// What the in-process chain check established.
#[derive(Clone, Debug)]
pub struct ChainReport {
    /// Subjects from the leaf up to the root.
    pub subjects: Vec<String>,
    /// The leaf's single URI SAN.
    pub spiffe_id: String,
}

/// Verifies in-process, with x509-parser's signature verification (aws-lc-rs), that the chain
/// (leaf first, no root) leads to `root_pem`: each certificate is signed by the next, every issuer
/// is a CA, every certificate is valid at `now`, the root is self-signed, and the leaf carries
/// exactly one URI SAN equal to `expected_uri` and the public key `expected_spki`.
///
/// # Errors
/// The first broken link, named.
pub fn verify_chain_in_process(
    chain_pem: &str,
    root_pem: &str,
    expected_uri: &str,
    expected_spki: &[u8],
    now: SystemTime,
) -> anyhow::Result<ChainReport> {
    use x509_parser::prelude::*;
    let mut ders = pem_certificates(chain_pem)?;
    let roots = pem_certificates(root_pem)?;
    if roots.len() != 1 {
        bail!("status.ca holds {} certificates, expected 1", roots.len());
    }
    if ders.len() < 2 {
        bail!(
            "the chain holds {} certificates, expected leaf + issuers",
            ders.len()
        );
    }
    ders.push(roots[0].clone());
    let certs = ders
        .iter()
        .map(|d| {
            X509Certificate::from_der(d)
                .map(|(_, c)| c)
                .map_err(|e| anyhow::anyhow!("certificate does not parse: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs() as i64;
    let at = ASN1Time::from_timestamp(now_secs).context("time out of range")?;
    for (i, cert) in certs.iter().enumerate() {
        let issuer = certs.get(i + 1).unwrap_or(cert);
        cert.verify_signature(Some(issuer.public_key()))
            .map_err(|e| {
                anyhow::anyhow!(
                    "signature of {} does not verify with the key of {}: {e}",
                    cert.subject(),
                    issuer.subject()
                )
            })?;
        if cert.issuer() != issuer.subject() {
            bail!("issuer of {} is not {}", cert.subject(), issuer.subject());
        }
        if !cert.validity().is_valid_at(at) {
            bail!("{} is not valid now", cert.subject());
        }
        if i > 0 && !cert.is_ca() {
            bail!("{} signs certificates but is not a CA", cert.subject());
        }
    }
    let leaf = &certs[0];
    if leaf.is_ca() {
        bail!("the leaf is a CA");
    }
    if leaf.public_key().raw != expected_spki {
        bail!("the leaf's key is not the CSR's key");
    }
    let san = leaf
        .subject_alternative_name()
        .map_err(|e| anyhow::anyhow!("leaf SAN does not parse: {e}"))?
        .context("the leaf has no subjectAltName")?;
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    if uris != [expected_uri] {
        bail!("leaf URI SANs {uris:?}, expected exactly [{expected_uri}]");
    }
    Ok(ChainReport {
        subjects: certs.iter().map(|c| c.subject().to_string()).collect(),
        spiffe_id: expected_uri.to_owned(),
    })
}

/// Runs `openssl verify -x509_strict` on the leaf with the chain's intermediates untrusted and
/// the root trusted. `Ok(None)` when no `openssl` binary is on PATH.
///
/// # Errors
/// Temp-file failures, or verification failure with openssl's output.
pub fn openssl_verify(
    chain_pem: &str,
    root_pem: &str,
    dir: &Path,
) -> anyhow::Result<Option<String>> {
    let ders = pem_certificates(chain_pem)?;
    let to_pem = |d: &Vec<u8>| pem::encode(&pem::Pem::new("CERTIFICATE", d.clone()));
    let untrusted: Vec<String> = ders[1..].iter().map(to_pem).collect();
    let verdict = match crate::verifiers::verify_in(
        dir,
        &to_pem(&ders[0]),
        &untrusted,
        root_pem,
        Some("sslclient"),
    ) {
        Ok(verdict) => verdict,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("running openssl"),
    };
    if !verdict.ok {
        bail!("openssl verify failed: {}", verdict.output.trim());
    }
    Ok(Some(verdict.output.trim().to_owned()))
}

/// Latency figures of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
    /// Mean.
    pub mean: Duration,
}

/// Summarizes `samples` (sorted in place); nearest-rank percentiles.
pub fn summarize(samples: &mut [Duration]) -> LatencySummary {
    if samples.is_empty() {
        return LatencySummary::default();
    }
    samples.sort_unstable();
    let rank = |p: f64| {
        let idx = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[idx.clamp(1, samples.len()) - 1]
    };
    let total: Duration = samples.iter().sum();
    LatencySummary {
        count: samples.len(),
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: samples[samples.len() - 1],
        mean: total / samples.len() as u32,
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `VmRSS` of process `pid` in KiB, from `/proc/<pid>/status`.
///
/// # Errors
/// The file cannot be read or has no `VmRSS` line (a process that exited).
pub fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .with_context(|| format!("{path} has no VmRSS line"))?;
    let kib = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .with_context(|| format!("unparsable VmRSS line {line:?}"))?;
    Ok(kib)
}

/// CPU time (user + system) consumed so far by process `pid`, from `/proc/<pid>/stat`
/// (fields 14 and 15, in USER_HZ = 100 ticks per second on Linux).
///
/// # Errors
/// The file cannot be read or parsed (a process that exited).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = text
        .rsplit_once(')')
        .with_context(|| format!("{path} has no command field"))?
        .1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime field 15.
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i - 3)
            .with_context(|| format!("{path} has no field {i}"))?
            .parse::<u64>()
            .with_context(|| format!("{path}: field {i} is not a number"))
    };
    Ok((tick(14)? + tick(15)?) as f64 / 100.0)
}

/// One series of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// CSS colour.
    pub colour: &'static str,
    /// Points (x, y) in data units, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// How a chart draws its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChartKind {
    /// Polylines through the points.
    Lines,
    /// One bar per point of the first series (a histogram; x is the bucket's lower edge).
    Bars,
}

/// A chart's text.
#[derive(Clone, Debug)]
pub struct ChartText {
    /// Title at the top.
    pub title: String,
    /// Subtitle (figures) under the title.
    pub subtitle: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
}

/// A self-contained SVG chart (axes, ticks, grid, series, legend), written by hand so the bench
/// needs no plotting dependency. Optional horizontal/vertical reference lines mark goals.
pub fn svg_chart(
    text: &ChartText,
    kind: ChartKind,
    series: &[Series],
    goal_x: Option<(f64, &str)>,
) -> String {
    const W: f64 = 800.0;
    const H: f64 = 420.0;
    const L: f64 = 70.0;
    const R: f64 = 20.0;
    const T: f64 = 60.0;
    const B: f64 = 50.0;
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_max) = (0.0f64, 0.0f64);
    for (x, y) in all {
        x_max = x_max.max(*x);
        y_max = y_max.max(*y);
    }
    if let Some((gx, _)) = goal_x {
        x_max = x_max.max(gx);
    }
    if kind == ChartKind::Bars
        && let Some(s) = series.first()
        && s.points.len() >= 2
    {
        x_max += s.points[1].0 - s.points[0].0;
    }
    let x_step = nice_step(x_max);
    let y_step = nice_step(y_max);
    let x_top = (x_max / x_step).ceil().max(1.0) * x_step;
    let y_top = (y_max / y_step).ceil().max(1.0) * y_step;
    let px = |x: f64| L + (x / x_top) * (W - L - R);
    let py = |y: f64| H - B - (y / y_top) * (H - T - B);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="16" text-anchor="middle" font-weight="bold">{}</text>"#,
        W / 2.0,
        xml(&text.title)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="42" text-anchor="middle" fill="dimgray">{}</text>"#,
        W / 2.0,
        xml(&text.subtitle)
    );
    // Grid and ticks.
    let mut x = 0.0;
    while x <= x_top + x_step * 0.01 {
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="gainsboro"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"#,
            px(x),
            T,
            H - B,
            H - B + 16.0,
            tick_label(x)
        );
        x += x_step;
    }
    let mut y = 0.0;
    while y <= y_top + y_step * 0.01 {
        let _ = writeln!(
            s,
            r#"<line x1="{0}" y1="{1:.1}" x2="{2}" y2="{1:.1}" stroke="gainsboro"/><text x="{3}" y="{4:.1}" text-anchor="end">{5}</text>"#,
            L,
            py(y),
            W - R,
            L - 6.0,
            py(y) + 4.0,
            tick_label(y)
        );
        y += y_step;
    }
    let _ = writeln!(
        s,
        r#"<line x1="{L}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/><line x1="{L}" y1="{T}" x2="{L}" y2="{0}" stroke="black"/>"#,
        H - B,
        W - R
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (L + W - R) / 2.0,
        H - 12.0,
        xml(&text.x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{0}" text-anchor="middle" transform="rotate(-90 16 {0})">{1}</text>"#,
        (T + H - B) / 2.0,
        xml(&text.y_label)
    );
    if let Some((gx, label)) = goal_x {
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="firebrick" stroke-dasharray="6 4"/><text x="{3:.1}" y="{4}" fill="firebrick" text-anchor="end">{5}</text>"#,
            px(gx),
            T,
            H - B,
            px(gx) - 4.0,
            T + 14.0,
            xml(label)
        );
    }
    match kind {
        ChartKind::Lines => {
            for ser in series {
                let pts: Vec<String> = ser
                    .points
                    .iter()
                    .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                    ser.colour,
                    pts.join(" ")
                );
            }
        }
        ChartKind::Bars => {
            if let Some(ser) = series.first() {
                let width = match ser.points.as_slice() {
                    [a, b, ..] => px(b.0) - px(a.0),
                    _ => 10.0,
                };
                for (x, y) in &ser.points {
                    let _ = writeln!(
                        s,
                        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                        px(*x),
                        py(*y),
                        (width - 1.0).max(1.0),
                        (H - B - py(*y)).max(0.0),
                        ser.colour
                    );
                }
            }
        }
    }
    for (i, ser) in series.iter().enumerate() {
        let ly = T + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{}" y="{:.1}">{}</text>"#,
            L + 12.0,
            ly,
            ser.colour,
            L + 30.0,
            ly + 10.0,
            xml(&ser.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A 1-2-5 step giving about 5–10 ticks up to `max`.
fn nice_step(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn tick_label(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A histogram of `samples` in `buckets` equal buckets from 0 to their maximum, in milliseconds:
/// points (bucket lower edge in ms, count).
pub fn latency_histogram_ms(samples: &[Duration], buckets: usize) -> Vec<(f64, f64)> {
    let max = samples
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .fold(0.0, f64::max);
    let buckets = buckets.max(1);
    let width = nice_step(max * 6.0 / buckets as f64).max(1e-3);
    let n = ((max / width).floor() as usize + 1).max(1);
    let mut counts = vec![0u64; n];
    for d in samples {
        let idx = ((d.as_secs_f64() * 1e3) / width).floor() as usize;
        counts[idx.min(n - 1)] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| (i as f64 * width, *c as f64))
        .collect()
}

/// kube-sim, the mock TLSPC (shipped seed) and a configuration file for `firefly run`, in one
/// temporary directory. The controller itself is started separately, in-process
/// ([`Stack::start_controller`]) or as a child process ([`Stack::spawn_controller_process`]).
pub struct Stack {
    /// The API server.
    pub sim: kube_sim::KubeSim,
    /// The mock TLSPC.
    pub mock: firefly::tlspc_mock::MockServer,
    /// A client for the driver (istio-csr and the approver).
    pub client: kube::Client,
    /// Holds the mock's state dir and the configuration files.
    pub dir: tempfile::TempDir,
}

/// Knobs of the configuration the stack writes.
#[derive(Clone, Debug)]
pub struct ControllerKnobs {
    /// `controller.leaderElection.enabled`.
    pub leader_election: bool,
    /// `controller.leaderElection.leaseDuration` / renewDeadline / retryPeriod, Go syntax.
    pub lease_timings: (&'static str, &'static str, &'static str),
    /// `logging.level`.
    pub log_level: &'static str,
    /// `bootstrap.vaas.policyMaxStaleness`.
    pub policy_max_staleness: &'static str,
    /// `bootstrap.vaas.policyRefreshInterval`.
    pub policy_refresh_interval: &'static str,
    /// `controller.certificateSigningRequests.enabled`, with istiod an allowed requester.
    pub certificate_signing_requests: bool,
    /// `controller.kubeconfigFile`; `None`: kube-sim's own kubeconfig (the admin).
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The `controller.podCertificates` block (YAML indented by four spaces), when set.
    pub pod_certificates: Option<String>,
}

impl Default for ControllerKnobs {
    fn default() -> Self {
        ControllerKnobs {
            leader_election: false,
            lease_timings: ("2s", "1500ms", "200ms"),
            log_level: "warn",
            policy_max_staleness: "30m",
            policy_refresh_interval: "1m",
            certificate_signing_requests: false,
            kubeconfig: None,
            pod_certificates: None,
        }
    }
}

impl Stack {
    /// Starts kube-sim (CRDs installed, namespaces istio-system and venafi) and the mock TLSPC
    /// with the shipped seed and a state dir in a fresh temporary directory.
    ///
    /// # Errors
    /// Any component failing to start.
    pub async fn start() -> anyhow::Result<Stack> {
        Self::start_with(kube_sim::SimOptions::default()).await
    }

    /// [`Stack::start`] with kube-sim's options given (e.g. authentication and RBAC on).
    ///
    /// # Errors
    /// Any component failing to start.
    pub async fn start_with(options: kube_sim::SimOptions) -> anyhow::Result<Stack> {
        firefly::crypto::install_default_provider();
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let sim = crate::cluster::start_sim_with(options, &[ISTIO_CSR_NAMESPACE, "venafi"]).await?;
        let mock =
            crate::tlspc_mock::serve(SHIPPED_SEED, Some(&dir.path().join("tlspc-mock"))).await?;
        let client = sim.client().await.context("kube-sim client")?;
        Ok(Stack {
            sim,
            mock,
            client,
            dir,
        })
    }

    /// Writes a `firefly run` configuration for this stack and returns its path.
    ///
    /// # Errors
    /// Writing the file.
    pub fn write_config(
        &self,
        name: &str,
        knobs: &ControllerKnobs,
    ) -> anyhow::Result<std::path::PathBuf> {
        let state = self.dir.path().join("tlspc-mock");
        let (lease, renew, retry) = knobs.lease_timings;
        let yaml = format!(
            r#"bootstrap:
  vaas:
    url: {url}
    auth:
      clientID: "{client_id}"
      privateKeyFile: {key}
    csr:
      instanceNaming: "{name}"
    policyRefreshInterval: {refresh}
    policyMaxStaleness: {stale}
    requestTimeout: 5s
signer:
  inMemory: true
  lockMode: keyPages
controller:
  kubeconfigFile: {kubeconfig}
  leaderElectionNamespace: venafi
  leaderElection:
    enabled: {le}
    leaseName: firefly-controller
    leaseDuration: {lease}
    renewDeadline: {renew}
    retryPeriod: {retry}
  allowedRequesters: {requesters}
  maxRetryDuration: 5m
  maxConcurrentReconciles: 256
  certificateSigningRequests:
    enabled: {csr}{pod_certificates}
admin:
  readinessAddress: "127.0.0.1:0"
  metricsAddress: "127.0.0.1:0"
  chainAddress: "127.0.0.1:0"
logging:
  format: text
  level: {level}
"#,
            url = self.mock.base_url(),
            client_id = self.mock.client_id(),
            key = state.join("svc-acct.key").display(),
            refresh = knobs.policy_refresh_interval,
            stale = knobs.policy_max_staleness,
            kubeconfig = knobs
                .kubeconfig
                .as_deref()
                .unwrap_or(self.sim.kubeconfig_path())
                .display(),
            le = knobs.leader_election,
            requesters = if knobs.certificate_signing_requests {
                format!(
                    "[\"{ISTIO_CSR_USERNAME}\", \"{}\"]",
                    crate::istiod::ISTIOD_USERNAME
                )
            } else {
                format!("[\"{ISTIO_CSR_USERNAME}\"]")
            },
            csr = knobs.certificate_signing_requests,
            pod_certificates = knobs
                .pod_certificates
                .as_deref()
                .map(|block| format!("\n  podCertificates:\n{block}"))
                .unwrap_or_default(),
            level = knobs.log_level,
        );
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Creates the ClusterIssuer `istio-ca` istiod's CSRs address (default policy istio-mtls,
    /// identities of every namespace) and waits until it is Ready.
    ///
    /// # Errors
    /// The API call's error, or it did not become Ready within `timeout`.
    pub async fn ready_mesh_cluster_issuer(&self, timeout: Duration) -> anyhow::Result<()> {
        let api: kube::Api<firefly::crd::ClusterIssuer> = kube::Api::all(self.client.clone());
        let issuer = firefly::crd::ClusterIssuer::new(
            "istio-ca",
            firefly::crd::ClusterIssuerSpec {
                default_policy_name: Some(ISTIO_MTLS_POLICY.into()),
                identity_namespaces: Some(vec!["*".into()]),
                ..Default::default()
            },
        );
        api.create(&kube::api::PostParams::default(), &issuer)
            .await
            .context("creating ClusterIssuer istio-ca")?;
        kube_sim::wait_for(timeout, || async {
            self.sim
                .object(GROUP, "clusterissuers", "", "istio-ca")
                .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("True"))
        })
        .await
        .context("ClusterIssuer istio-ca did not become Ready")
    }

    /// Creates the Issuer `firefly-istio` in istio-system (default policy istio-mtls, istio-csr
    /// as its allowed requester).
    ///
    /// # Errors
    /// The API call's error.
    pub async fn create_issuer(&self) -> anyhow::Result<()> {
        let api: kube::Api<firefly::crd::Issuer> =
            kube::Api::namespaced(self.client.clone(), ISTIO_CSR_NAMESPACE);
        let issuer = firefly::crd::Issuer::new(
            ISSUER_NAME,
            firefly::crd::IssuerSpec {
                default_policy_name: Some(ISTIO_MTLS_POLICY.into()),
                allowed_requesters: Some(vec![ISTIO_CSR_USERNAME.into()]),
                trust_domain: Some(TRUST_DOMAIN.into()),
                ..Default::default()
            },
        );
        api.create(&kube::api::PostParams::default(), &issuer)
            .await
            .context("creating the Issuer")?;
        Ok(())
    }

    /// Waits until the Issuer reports `Ready=True` (the controller has an active sub-CA).
    ///
    /// # Errors
    /// Not ready within `timeout`; the last Ready condition is named.
    pub async fn wait_issuer_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let res = kube_sim::wait_for(timeout, || async {
            self.sim
                .object(GROUP, "issuers", ISTIO_CSR_NAMESPACE, ISSUER_NAME)
                .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("True"))
        })
        .await;
        if res.is_err() {
            let cond = self
                .sim
                .object(GROUP, "issuers", ISTIO_CSR_NAMESPACE, ISSUER_NAME)
                .and_then(|o| o.pointer("/status/conditions").cloned());
            bail!("the Issuer did not become Ready within {timeout:?}; conditions: {cond:?}");
        }
        Ok(())
    }

    /// The CertificateRequest API in istio-system for the driver.
    pub fn requests(&self) -> kube::Api<CertificateRequest> {
        kube::Api::namespaced(self.client.clone(), ISTIO_CSR_NAMESPACE)
    }
}

/// An object the e2e tracker follows to its end: a cert-manager CertificateRequest (Ready=True
/// with a certificate, or Ready=False Failed/Denied) or a Kubernetes CertificateSigningRequest
/// (`status.certificate`, or a `Failed`/`Denied` condition).
pub trait Trackable:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// What the tracker's watch decodes of each event instead of the whole object: the name,
    /// the metadata the watcher needs, and the status fields its outcome and certificate are
    /// read from (the spec, the CSR and `managedFields` are skipped unbuilt).
    type Watched: Watched;
}

/// The lean view of a [`Trackable`] the tracker decodes: same group, version, kind and plural.
pub trait Watched:
    kube::Resource<DynamicType = (), Scope = kube::core::DynamicResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// How it ended, read from its status.
    fn outcome(&self) -> Outcome;
    /// Its certificate as the API returns it, when it carries a non-empty one.
    fn certificate_bytes(&self) -> Option<&[u8]>;
}

/// Implements [`kube::Resource`] for lean view `$view` with the group, version, kind and plural
/// of `$full`, with a dynamic scope (its `Api` is built from the full kind's namespace).
macro_rules! view_resource {
    ($view:ty, $full:ty) => {
        impl kube::Resource for $view {
            type DynamicType = ();
            type Scope = kube::core::DynamicResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                <$full as kube::Resource>::kind(&())
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                <$full as kube::Resource>::group(&())
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                <$full as kube::Resource>::version(&())
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                <$full as kube::Resource>::plural(&())
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use view_resource;

/// The metadata a lean view keeps: what the tracker and the watcher read. Every other key
/// (`managedFields`, labels, annotations, …) is skipped without being built.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewMeta {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    uid: Option<String>,
}

/// Decodes `metadata` as a [`ViewMeta`].
pub(crate) fn view_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = <ViewMeta as serde::Deserialize>::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        resource_version: m.resource_version,
        uid: m.uid,
        ..ObjectMeta::default()
    })
}

/// One status condition as the tracker reads it (CertificateRequest and CSR conditions).
#[derive(Clone, Debug, serde::Deserialize)]
struct ViewCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// What the tracker decodes of a CertificateRequest: its name and resourceVersion, its
/// conditions and its certificate.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct CertificateRequestView {
    #[serde(default, deserialize_with = "view_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    status: Option<CertificateRequestViewStatus>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct CertificateRequestViewStatus {
    #[serde(default)]
    conditions: Option<Vec<ViewCondition>>,
    #[serde(default)]
    certificate: Option<String>,
}

view_resource!(CertificateRequestView, CertificateRequest);

impl Trackable for CertificateRequest {
    type Watched = CertificateRequestView;
}

impl Watched for CertificateRequestView {
    /// The rules of [`outcome`]: Issued on Ready=True; Failed on Ready=False with reason
    /// `Failed` or `Denied`.
    fn outcome(&self) -> Outcome {
        let Some(status) = self.status.as_ref() else {
            return Outcome::Open;
        };
        ready_outcome(status.conditions.iter().flatten().map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_deref(),
                c.message.as_deref(),
            )
        }))
    }

    fn certificate_bytes(&self) -> Option<&[u8]> {
        self.status
            .as_ref()
            .and_then(|st| st.certificate.as_deref())
            .filter(|c| !c.is_empty())
            .map(str::as_bytes)
    }
}

/// What the tracker decodes of a CertificateSigningRequest: its name and resourceVersion, its
/// conditions and its certificate.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct CertificateSigningRequestView {
    #[serde(default, deserialize_with = "view_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    status: Option<CertificateSigningRequestViewStatus>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct CertificateSigningRequestViewStatus {
    #[serde(default)]
    conditions: Option<Vec<ViewCondition>>,
    #[serde(default)]
    certificate: Option<k8s_openapi::ByteString>,
}

view_resource!(CertificateSigningRequestView, CertificateSigningRequest);

impl Trackable for CertificateSigningRequest {
    type Watched = CertificateSigningRequestView;
}

impl Watched for CertificateSigningRequestView {
    /// Issued once `status.certificate` is set; Failed on a true `Failed` or `Denied` condition.
    fn outcome(&self) -> Outcome {
        if self.certificate_bytes().is_some() {
            return Outcome::Issued;
        }
        let ended = self
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| (c.type_ == "Failed" || c.type_ == "Denied") && c.status == "True")
            });
        match ended {
            Some(c) => Outcome::Failed {
                reason: c.reason.clone().unwrap_or_else(|| c.type_.clone()),
                message: c.message.clone().unwrap_or_default(),
            },
            None => Outcome::Open,
        }
    }

    fn certificate_bytes(&self) -> Option<&[u8]> {
        self.status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .map(|c| c.0.as_slice())
            .filter(|c| !c.is_empty())
    }
}

/// What the tracker knows about one request.
#[derive(Clone, Debug, Default)]
pub struct Tracked {
    /// When the watch first showed it issued (`Ready=True`, or a CSR's certificate).
    pub issued_at: Option<std::time::Instant>,
    /// Distinct non-empty certificates seen (more than 1 = signed twice).
    pub certificates_seen: u32,
    /// Fingerprint of the last certificate seen.
    last_certificate: u64,
    /// The failure's reason and message, when seen.
    pub failed: Option<(String, String)>,
}

#[derive(Default)]
struct TrackerState {
    by_name: std::collections::HashMap<String, Tracked>,
    issued: usize,
    failed: usize,
    /// The name of the first request seen issued.
    first_issued: Option<String>,
}

/// Watches every object of `K` the API it is given reaches (with its own watch, as istio-csr
/// and istiod do) and records when each was issued, how many distinct certificates it ever
/// carried, and failures. The watch decodes only [`Trackable::Watched`] of each event.
pub struct ReadyTracker<K: Trackable = CertificateRequest> {
    state: std::sync::Arc<std::sync::Mutex<TrackerState>>,
    changed: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
    kind: std::marker::PhantomData<fn() -> K>,
}

impl<K: Trackable> Drop for ReadyTracker<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K: Trackable> ReadyTracker<K> {
    /// Starts watching what `api` reaches (its namespace, or every one), decoding each event
    /// as [`Trackable::Watched`]; returns once the initial list is done.
    ///
    /// # Errors
    /// The watch failing before its first list.
    pub async fn start(api: kube::Api<K>) -> anyhow::Result<ReadyTracker<K>> {
        use futures::StreamExt as _;
        use kube::runtime::{WatchStreamExt as _, watcher};
        let url = api.resource_url().to_owned();
        let ns = api.namespace().map(str::to_owned);
        let client = api.into_client();
        let api: kube::Api<K::Watched> = match ns {
            Some(ns) => kube::Api::namespaced_with(client, &ns, &()),
            None => kube::Api::all_with(client, &()),
        };
        if api.resource_url() != url {
            bail!(
                "the tracker's view of {} watches {} instead of {url}",
                K::kind(&()),
                api.resource_url()
            );
        }
        let state = std::sync::Arc::new(std::sync::Mutex::new(TrackerState::default()));
        let changed = std::sync::Arc::new(tokio::sync::Notify::new());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let task = {
            let state = state.clone();
            let changed = changed.clone();
            tokio::spawn(async move {
                let mut ready_tx = Some(ready_tx);
                let mut stream =
                    std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
                while let Some(ev) = stream.next().await {
                    let now = std::time::Instant::now();
                    match ev {
                        Ok(watcher::Event::Apply(obj)) | Ok(watcher::Event::InitApply(obj)) => {
                            record(&state, obj, now);
                            changed.notify_waiters();
                        }
                        Ok(watcher::Event::InitDone) => {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(_) | Err(_) => {}
                    }
                }
            })
        };
        ready_rx
            .await
            .map_err(|_| anyhow::anyhow!("the {} watch ended before listing", K::kind(&())))?;
        Ok(ReadyTracker {
            state,
            changed,
            task,
            kind: std::marker::PhantomData,
        })
    }

    /// (issued, failed) so far.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.issued, s.failed)
    }

    /// A copy of what is known about `name`.
    pub fn get(&self, name: &str) -> Option<Tracked> {
        self.lock().by_name.get(name).cloned()
    }

    /// Every tracked request.
    pub fn all(&self) -> Vec<(String, Tracked)> {
        self.lock()
            .by_name
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// One failed request, as `name: reason: message`.
    pub fn first_failure(&self) -> Option<String> {
        self.lock()
            .by_name
            .iter()
            .find_map(|(name, t)| t.failed.as_ref().map(|(r, m)| format!("{name}: {r}: {m}")))
    }

    /// The name of the first request seen issued (GET it for the whole object).
    pub fn first_issued(&self) -> Option<String> {
        self.lock().first_issued.clone()
    }

    /// Waits until `issued + failed >= n`, calling `progress` at most every 100 ms.
    ///
    /// # Errors
    /// `timeout` elapsed first (the counts are named).
    pub async fn wait_terminal(
        &self,
        n: usize,
        timeout: Duration,
        mut progress: impl FnMut(usize, usize),
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let (issued, failed) = self.counts();
            progress(issued, failed);
            if issued + failed >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("only {issued} issued and {failed} failed of {n} requests after {timeout:?}");
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        // A poisoned lock only means a panicking reader; the counts are still meaningful.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn record<W: Watched>(state: &std::sync::Mutex<TrackerState>, mut obj: W, now: std::time::Instant) {
    use std::hash::{Hash as _, Hasher as _};
    let Some(name) = obj.meta_mut().name.take() else {
        return;
    };
    let out = obj.outcome();
    let certificate = obj.certificate_bytes().map(|c| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        c.hash(&mut h);
        h.finish()
    });
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let first = (out == Outcome::Issued && s.first_issued.is_none()).then(|| name.clone());
    let entry = s.by_name.entry(name).or_default();
    let mut newly_issued = false;
    let mut newly_failed = false;
    if let Some(fp) = certificate
        && fp != entry.last_certificate
    {
        entry.certificates_seen += 1;
        entry.last_certificate = fp;
    }
    match out {
        Outcome::Issued if entry.issued_at.is_none() => {
            entry.issued_at = Some(now);
            newly_issued = true;
        }
        Outcome::Failed { reason, message } if entry.failed.is_none() => {
            entry.failed = Some((reason, message));
            newly_failed = true;
        }
        _ => {}
    }
    if newly_issued {
        s.issued += 1;
        if first.is_some() {
            s.first_issued = first;
        }
    }
    if newly_failed {
        s.failed += 1;
    }
}

/// One workload's request material: (SPIFFE ID, key kind, CSR PEM, the key's SPKI DER).
pub type WorkloadCsr = (String, KeyKind, String, Vec<u8>);

/// Pre-built CSRs for `n` workloads from `pool` (CSR signing is the driver's cost, kept out of
/// the measured window): (SPIFFE ID, key kind, CSR PEM, key SPKI DER).
///
/// # Errors
/// CSR signing failure.
pub fn workload_csrs(pool: &KeyPool, n: usize) -> anyhow::Result<Vec<WorkloadCsr>> {
    (0..n)
        .map(|i| {
            let id = workload_spiffe_id(i);
            let (kind, key) = pool.key_for(i);
            let pem_text = istio_agent_csr_pem(key, &id)?;
            Ok((
                id,
                kind,
                pem_text,
                rcgen::PublicKeyData::subject_public_key_info(key),
            ))
        })
        .collect()
}

/// Plays istio-csr then cert-manager's approver for one request: creates it, then approves it.
/// Returns the server-generated name and the instant just before the approval was sent.
///
/// # Errors
/// Either API call failing.
pub async fn create_and_approve(
    api: &kube::Api<CertificateRequest>,
    cr: &CertificateRequest,
) -> anyhow::Result<(String, std::time::Instant)> {
    let created = create_generated(api, cr).await?;
    let name = created
        .metadata
        .name
        .context("the API server returned no name for generateName")?;
    let at = std::time::Instant::now();
    approve(api, &name).await?;
    Ok((name, at))
}

impl Stack {
    /// Loads the configuration at `path`, runs the real bootstrap against the mock, and starts
    /// the controller in-process with `identity` (for leader-election tests).
    ///
    /// # Errors
    /// Configuration, bootstrap or controller start failure.
    pub async fn start_controller(
        &self,
        path: &Path,
        identity: &str,
    ) -> anyhow::Result<(
        firefly::bootstrap::Bootstrap,
        firefly::run::ControllerHandle,
    )> {
        let config = firefly::config::Config::load(path)
            .with_context(|| format!("loading {}", path.display()))?;
        // As `firefly run` does: every replica holds its own sub-CA; the Signer is the authority.
        let bootstrap = firefly::bootstrap::Bootstrap::start(
            &config,
            std::sync::Arc::new(firefly::bootstrap::SystemClock),
        )
        .await
        .context("bootstrap (TLSPC login and first sub-CA)")?;
        let authority: std::sync::Arc<dyn firefly::issuer::Authority> =
            std::sync::Arc::new(bootstrap.signer());
        let client = firefly::run::kube_client(&config).await?;
        let handle = firefly::run::Controller::start_with(
            &config,
            client,
            authority,
            firefly::run::StartOptions {
                identity: Some(identity.to_owned()),
                ..Default::default()
            },
        )
        .await
        .context("starting the controller")?;
        Ok((bootstrap, handle))
    }
}

/// Creates `obj` (which has `generateName`), trying again when the generated name collides with
/// an existing one: Kubernetes 1.32 retries such collisions inside the API server
/// (RetryGenerateName), kube-sim answers 409 AlreadyExists, which with 5 random characters happens
/// within a few thousand requests.
///
/// # Errors
/// Any other API error, or a collision on every attempt.
pub async fn create_generated<K>(api: &kube::Api<K>, obj: &K) -> anyhow::Result<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut attempt = 0;
    loop {
        match api.create(&kube::api::PostParams::default(), obj).await {
            Ok(c) => return Ok(c),
            Err(kube::Error::Api(e))
                if e.code == 409 && e.reason == "AlreadyExists" && attempt < 7 =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e).with_context(|| format!("creating a {}", K::kind(&()))),
        }
    }
}

/// [`create_and_approve`] that retries each step (up to `attempts` times, 50 ms apart) when the
/// API server answers with an error, as istio-csr and cert-manager's approver do through
/// client-go's retries. A create retried after an error may leave an extra, never-approved
/// request behind only if the server acted before failing; kube-sim's injected faults answer
/// before acting.
///
/// # Errors
/// The last error once `attempts` are used up.
pub async fn create_and_approve_retrying(
    api: &kube::Api<CertificateRequest>,
    cr: &CertificateRequest,
    attempts: u32,
) -> anyhow::Result<(String, std::time::Instant)> {
    let mut last = None;
    let mut created = None;
    for _ in 0..attempts.max(1) {
        match create_generated(api, cr).await {
            Ok(c) => {
                created = Some(c);
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = match created {
        Some(c) => c,
        None => bail!("create failed {attempts} times; last: {last:?}"),
    };
    let name = created
        .metadata
        .name
        .context("the API server returned no name for generateName")?;
    let mut last = None;
    for _ in 0..attempts.max(1) {
        let at = std::time::Instant::now();
        match approve(api, &name).await {
            Ok(_) => return Ok((name, at)),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("approving {name} failed {attempts} times; last: {last:?}")
}

/// Plays istio-csr + the approver for every CSR, `per_second` at most, each with retries; the
/// requests run concurrently. Returns (name, approval instant) in CSR order.
///
/// # Errors
/// A request that could not be created or approved within its retries.
pub async fn paced_burst(
    api: &kube::Api<CertificateRequest>,
    csrs: &[WorkloadCsr],
    per_second: u64,
) -> anyhow::Result<Vec<(String, std::time::Instant)>> {
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(csrs.len());
    for (i, (id, _, pem_text, _)) in csrs.iter().enumerate() {
        tokio::time::sleep_until(
            start + Duration::from_micros(i as u64 * 1_000_000 / per_second.max(1)),
        )
        .await;
        let api = api.clone();
        let cr = istio_csr_request(pem_text, id, ISSUER_NAME);
        tasks.push(tokio::spawn(async move {
            create_and_approve_retrying(&api, &cr, 40).await
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.context("a driver task panicked")??);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::PodCertificateRequest;
    use kube::Resource as _;
    use serde_json::json;

    /// `managedFields`, annotations and a spec the views skip.
    fn object(api_version: &str, kind: &str, status: serde_json::Value) -> String {
        json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {
                "name": "req-1", "namespace": "istio-system", "resourceVersion": "42", "uid": "u-1",
                "annotations": {"a": "b"}, "generateName": "req-",
                "managedFields": [
                    {"manager": "firefly", "operation": "Apply", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:status": {"f:certificate": {}}}},
                    {"manager": "unknown", "operation": "Update", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {".": {}, "f:request": {}}}},
                ],
            },
            "spec": {"request": "LS0t", "signerName": "x/y", "usages": ["client auth"],
                     "issuerRef": {"name": "i"}},
            "status": status,
        })
        .to_string()
    }

    fn view<W: Watched>(text: &str) -> W {
        let v: W = serde_json::from_str(text).unwrap();
        let m = v.meta();
        assert_eq!(m.name.as_deref(), Some("req-1"));
        assert_eq!(m.namespace.as_deref(), Some("istio-system"));
        assert_eq!(m.resource_version.as_deref(), Some("42"));
        assert_eq!(m.uid.as_deref(), Some("u-1"));
        assert!(m.managed_fields.is_none() && m.annotations.is_none());
        v
    }

    #[test]
    fn views_share_the_full_kinds_urls() {
        assert_eq!(
            CertificateRequestView::url_path(&(), Some("ns")),
            CertificateRequest::url_path(&(), Some("ns"))
        );
        assert_eq!(
            CertificateSigningRequestView::url_path(&(), None),
            CertificateSigningRequest::url_path(&(), None)
        );
        assert_eq!(
            crate::pods::PodCertificateRequestView::url_path(&(), Some("ns")),
            PodCertificateRequest::url_path(&(), Some("ns"))
        );
    }

    #[test]
    fn certificate_request_view_reads_as_the_full_object() {
        let cond = |t: &str, s: &str, r: &str| {
            json!({"type": t, "status": s, "reason": r, "message": "m",
                   "lastTransitionTime": "2026-01-01T00:00:00Z"})
        };
        let statuses = [
            json!(null),
            json!({}),
            json!({"conditions": [cond("Approved", "True", "ok")]}),
            json!({"conditions": [cond("Approved", "True", "ok"), cond("Ready", "True", "Issued")],
                   "certificate": "Y2VydA==", "ca": "Y2E="}),
            json!({"conditions": [cond("Ready", "False", "Denied")]}),
            json!({"conditions": [cond("Ready", "False", "Failed")], "certificate": ""}),
            json!({"conditions": [cond("Ready", "False", "Pending")]}),
        ];
        for status in statuses {
            let text = object("cert-manager.io/v1", "CertificateRequest", status.clone());
            let full: CertificateRequest = serde_json::from_str(&text).unwrap();
            let lean: CertificateRequestView = view(&text);
            assert_eq!(lean.outcome(), outcome(full.status.as_ref()), "{status}");
            let full_cert = full
                .status
                .as_ref()
                .and_then(|s| s.certificate.as_deref())
                .filter(|c| !c.is_empty())
                .map(str::as_bytes);
            assert_eq!(lean.certificate_bytes(), full_cert, "{status}");
        }
    }

    #[test]
    fn csr_and_pcr_views_read_their_outcomes() {
        let api = "certificates.k8s.io/v1";
        let csr = |status| {
            view::<CertificateSigningRequestView>(&object(api, "CertificateSigningRequest", status))
        };
        let issued = csr(json!({"certificate": "Y2VydA==", "conditions": [
            {"type": "Approved", "status": "True"}]}));
        assert_eq!(issued.outcome(), Outcome::Issued);
        assert_eq!(issued.certificate_bytes(), Some(&b"cert"[..]));
        let denied = csr(json!({"conditions": [{"type": "Denied", "status": "True"}]}));
        assert_eq!(
            denied.outcome(),
            Outcome::Failed {
                reason: "Denied".into(),
                message: String::new()
            }
        );
        assert_eq!(csr(json!({})).outcome(), Outcome::Open);

        let pcr = |status| {
            view::<crate::pods::PodCertificateRequestView>(&object(
                api,
                "PodCertificateRequest",
                status,
            ))
        };
        let issued = pcr(json!({"certificateChain": "PEM", "conditions": [
            {"type": "Issued", "status": "True", "reason": "Issued"}]}));
        assert_eq!(issued.outcome(), Outcome::Issued);
        assert_eq!(issued.certificate_bytes(), Some(&b"PEM"[..]));
        let failed = pcr(json!({"conditions": [
            {"type": "Failed", "status": "True", "reason": "Bad", "message": "no"}]}));
        assert_eq!(
            failed.outcome(),
            Outcome::Failed {
                reason: "Bad".into(),
                message: "no".into()
            }
        );
        assert_eq!(pcr(json!(null)).outcome(), Outcome::Open);
        assert_eq!(pcr(json!(null)).certificate_bytes(), None);
    }
}
