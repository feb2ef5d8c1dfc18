//! `firefly policy check`: runs the full decision a request would get (request decoding, SPIFFE
//! rules, policy) and explains it rule by rule. Reads the two files named on the command line and
//! writes to stdout; everything else is the pure core.
//!
//! Exit codes: 0 allowed; 1 the inputs parsed but break a rule; 2 a file is unreadable or
//! unparseable, or the policy itself is invalid. The JSON form is printed for every exit code.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::ca::IssueOptions;
use crate::csr::{self, CertificateRequest};
use crate::duration::{format_go_duration, format_iso8601_duration};
use crate::policy::engine::Field;
use crate::policy::model::PolicyInformation;
use crate::policy::{CompiledPolicy, LeafProfile, PolicyError, Request};
use crate::spiffe::TrustDomain;

/// Arguments of `firefly policy check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// One TLSPC `PolicyInformation` JSON object (server-managed fields such as `id` are ignored).
    #[arg(long)]
    pub policy: PathBuf,
    /// The certificate request (PEM `CERTIFICATE REQUEST`).
    #[arg(long)]
    pub csr: PathBuf,
    /// The duration the request asks for (cert-manager `spec.duration`, Go syntax such as `1h`).
    #[arg(long)]
    pub duration: Option<String>,
    /// The issuer's trust domain, when it sets one: SPIFFE IDs must be in it.
    #[arg(long = "trust-domain")]
    pub trust_domain: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// How the report is printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// For scripts: one JSON object, printed for every exit code.
    Json,
}

/// Runs the command.
///
/// # Errors
/// Only writing to stdout can fail; every input problem is part of the report (exit 2).
pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        policy,
        csr,
        duration,
        trust_domain,
        output,
    } = args;
    let policy_bytes = std::fs::read(&policy)
        .map_err(|e| format!("cannot read policy file {}: {e}", policy.display()));
    let csr_bytes =
        std::fs::read(&csr).map_err(|e| format!("cannot read CSR file {}: {e}", csr.display()));
    let report = check(
        &CheckInput {
            policy: policy_bytes,
            csr: csr_bytes,
            duration: duration.as_deref(),
            trust_domain: trust_domain.as_deref(),
        },
        SystemTime::now(),
    );
    let text = match output {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => render_text(&report),
    };
    print!("{text}");
    Ok(ExitCode::from(report.exit_code))
}

/// The command's inputs, already read (a read failure is carried as its message).
#[derive(Debug)]
pub struct CheckInput<'a> {
    /// The policy file's bytes.
    pub policy: Result<Vec<u8>, String>,
    /// The CSR file's bytes.
    pub csr: Result<Vec<u8>, String>,
    /// `--duration`.
    pub duration: Option<&'a str>,
    /// `--trust-domain`.
    pub trust_domain: Option<&'a str>,
}

/// The full report (the JSON form).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// True when a certificate would be issued.
    pub allowed: bool,
    /// 0, 1 or 2.
    pub exit_code: u8,
    /// Why the inputs could not be judged (exit 2).
    pub error: Option<String>,
    /// The policy, when it parsed.
    pub policy: Option<PolicySummary>,
    /// Shape violations of the policy itself (exit 2).
    pub policy_violations: Vec<FieldMessage>,
    /// Advice about a valid policy.
    pub warnings: Vec<String>,
    /// Every rule applied, passed or failed.
    pub rules: Vec<RuleReport>,
    /// The leaf that would be issued (exit 0).
    pub leaf: Option<LeafReport>,
}

/// The policy's identity.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicySummary {
    /// `name`.
    pub name: String,
    /// `id`, when the file has one.
    pub id: Option<String>,
    /// `validityPeriod` as parsed.
    pub max_validity: Option<String>,
}

/// A field and what is wrong with it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldMessage {
    /// JSON path.
    pub field: String,
    /// The rule and the offending value.
    pub message: String,
}

/// One rule applied to one value.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RuleReport {
    /// Field judged.
    pub field: String,
    /// Value judged.
    pub value: String,
    /// Rule applied.
    pub rule: String,
    /// Whether the value satisfies it.
    pub passed: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The leaf that would be issued.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LeafReport {
    /// Subject DN (`O=..., CN=...`), empty when none.
    pub subject: String,
    /// dNSName SANs.
    pub dns_names: Vec<String>,
    /// iPAddress SANs.
    pub ip_addresses: Vec<String>,
    /// rfc822Name SANs.
    pub rfc822_names: Vec<String>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// True when the SAN extension is critical (empty subject, C4).
    pub san_critical: bool,
    /// keyUsage names.
    pub key_usages: Vec<String>,
    /// extendedKeyUsage names.
    pub extended_key_usages: Vec<String>,
    /// Key algorithm of the request.
    pub key_algorithm: String,
    /// NotBefore (RFC 3339), backdated.
    pub not_before: String,
    /// NotAfter (RFC 3339), before any sub-CA clamp.
    pub not_after: String,
    /// Lifetime (Go syntax).
    pub lifetime: String,
    /// The duration asked for, when the policy shortened it.
    pub clamped_from: Option<String>,
}

/// Judges the inputs.
pub fn check(input: &CheckInput<'_>, now: SystemTime) -> Report {
    let mut report = Report {
        allowed: false,
        exit_code: 2,
        error: None,
        policy: None,
        policy_violations: Vec::new(),
        warnings: Vec::new(),
        rules: Vec::new(),
        leaf: None,
    };
    let policy_bytes = match &input.policy {
        Ok(b) => b,
        Err(e) => return report.fail_input(e.clone()),
    };
    let doc: PolicyInformation = match serde_json::from_slice(policy_bytes) {
        Ok(d) => d,
        Err(e) => {
            return report.fail_input(format!(
                "the policy file is not a PolicyInformation JSON object: {e}"
            ));
        }
    };
    report.policy = Some(PolicySummary {
        name: doc.name.clone(),
        id: doc.id.clone(),
        max_validity: doc.validity_period.clone(),
    });
    let policy = match CompiledPolicy::compile(&doc.to_policy()) {
        Ok(p) => p,
        Err(PolicyError::Shape { violations, .. }) => {
            report.policy_violations = violations
                .into_iter()
                .map(|v| FieldMessage {
                    field: v.field,
                    message: v.message,
                })
                .collect();
            return report.fail_input("the policy itself is invalid".to_owned());
        }
        // PolicyError is non-exhaustive: a future variant still fails the input, by its message.
        Err(e) => return report.fail_input(e.to_string()),
    };
    report.warnings = policy.warnings();
    if let Some(s) = &mut report.policy {
        s.max_validity = Some(format_iso8601_duration(policy.max_validity()));
    }
    let trust_domain: Option<TrustDomain> = match input.trust_domain.map(str::parse).transpose() {
        Ok(td) => td,
        Err(e) => return report.fail_input(format!("--trust-domain: {e}")),
    };
    let csr_bytes = match &input.csr {
        Ok(b) => b,
        Err(e) => return report.fail_input(e.clone()),
    };
    let request = match csr::decode_pem(csr_bytes) {
        Ok(r) => r,
        Err(e) if e.is_unparseable() => {
            return report.fail_input(format!("the CSR file is not a certificate request: {e}"));
        }
        Err(e) => {
            report.rules.push(RuleReport {
                field: "request".to_owned(),
                value: String::new(),
                rule: "certificate request checks (x509-svid §4)".to_owned(),
                passed: false,
                message: e.to_string(),
            });
            report.exit_code = 1;
            return report;
        }
    };
    report.rules.push(RuleReport {
        field: "request".to_owned(),
        value: request.key_algorithm.to_string(),
        rule: "certificate request checks (x509-svid §4): strict DER, signature, key".to_owned(),
        passed: true,
        message: String::new(),
    });
    let opts = IssueOptions::default();
    let evaluation = policy.evaluate(
        &Request {
            csr: &request,
            duration: input.duration,
            usages: None,
            is_ca: false,
            identities_annotation: None,
            trust_domain: trust_domain.as_ref(),
            minimum_duration: opts.minimum_duration,
        },
        true,
    );
    report
        .rules
        .extend(evaluation.checks.iter().map(|c| RuleReport {
            field: c.field.to_owned(),
            value: c.value.clone(),
            rule: c.rule.to_string(),
            passed: c.passed,
            message: c.message.clone(),
        }));
    match evaluation.profile {
        Some(profile) => {
            report.leaf = Some(leaf_report(&profile, &request, &opts, now));
            report.allowed = true;
            report.exit_code = 0;
        }
        None => report.exit_code = 1,
    }
    report
}

impl Report {
    fn fail_input(mut self, message: String) -> Report {
        self.error = Some(message);
        self.exit_code = 2;
        self.allowed = false;
        self
    }
}

fn leaf_report(
    profile: &LeafProfile,
    req: &CertificateRequest,
    opts: &IssueOptions,
    now: SystemTime,
) -> LeafReport {
    let subject = profile
        .subject
        .iter()
        .map(|(f, v)| {
            let key = match f {
                Field::Country => "C",
                Field::StateOrProvince => "ST",
                Field::Locality => "L",
                Field::Organization => "O",
                Field::OrganizationalUnit => "OU",
                _ => "CN",
            };
            format!("{key}={v}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let not_before = now.checked_sub(opts.backdate).unwrap_or(now);
    let not_after = now.checked_add(profile.lifetime).unwrap_or(now);
    LeafReport {
        san_critical: profile.subject.is_empty(),
        subject,
        dns_names: profile.dns_names.clone(),
        ip_addresses: profile
            .ip_addresses
            .iter()
            .map(ToString::to_string)
            .collect(),
        rfc822_names: profile.rfc822_names.clone(),
        uris: profile.uris.clone(),
        key_usages: profile
            .key_usages
            .iter()
            .map(|k| k.tlspc_name().to_owned())
            .collect(),
        extended_key_usages: profile
            .extended_key_usages
            .iter()
            .map(|e| e.tlspc_name().to_owned())
            .collect(),
        key_algorithm: req.key_algorithm.to_string(),
        not_before: rfc3339(not_before),
        not_after: rfc3339(not_after),
        lifetime: format_go_duration(profile.lifetime),
        clamped_from: profile.clamped_from.map(format_go_duration),
    }
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| format!("@{secs}"), |ts| ts.to_string())
}

/// The text form.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    if let Some(p) = &report.policy {
        let _ = writeln!(
            out,
            "policy {:?}{} (validity {})",
            p.name,
            p.id.as_deref()
                .map(|i| format!(" [{i}]"))
                .unwrap_or_default(),
            p.max_validity.as_deref().unwrap_or("?")
        );
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for v in &report.policy_violations {
        let _ = writeln!(out, "INVALID  {}: {}", v.field, v.message);
    }
    for r in &report.rules {
        let mark = if r.passed { "PASS" } else { "FAIL" };
        let value = if r.value.is_empty() {
            String::new()
        } else {
            format!(" {:?}", r.value)
        };
        let _ = write!(out, "{mark}  {}{value}: {}", r.field, r.rule);
        if !r.message.is_empty() {
            let _ = write!(out, " — {}", r.message);
        }
        out.push('\n');
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "error: {e}");
    }
    match (&report.leaf, report.exit_code) {
        (Some(leaf), _) => {
            let _ = writeln!(out, "ALLOWED: the leaf that would be issued:");
            let _ = writeln!(
                out,
                "  subject:            {}",
                if leaf.subject.is_empty() {
                    "(empty)"
                } else {
                    &leaf.subject
                }
            );
            let sans: Vec<String> = leaf
                .uris
                .iter()
                .map(|u| format!("URI:{u}"))
                .chain(leaf.dns_names.iter().map(|d| format!("DNS:{d}")))
                .chain(leaf.ip_addresses.iter().map(|i| format!("IP:{i}")))
                .chain(leaf.rfc822_names.iter().map(|e| format!("email:{e}")))
                .collect();
            let _ = writeln!(
                out,
                "  subjectAltName:     {}{}",
                sans.join(", "),
                if leaf.san_critical { " (critical)" } else { "" }
            );
            let _ = writeln!(
                out,
                "  keyUsage:           {} (critical)",
                leaf.key_usages.join(", ")
            );
            let _ = writeln!(
                out,
                "  extendedKeyUsage:   {}",
                leaf.extended_key_usages.join(", ")
            );
            let _ = writeln!(out, "  basicConstraints:   CA:false (critical)");
            let _ = writeln!(out, "  key:                {}", leaf.key_algorithm);
            let _ = writeln!(out, "  notBefore:          {}", leaf.not_before);
            let _ = writeln!(
                out,
                "  notAfter:           {} ({}{}; never after the sub-CA's NotAfter)",
                leaf.not_after,
                leaf.lifetime,
                leaf.clamped_from
                    .as_deref()
                    .map(|c| format!(", clamped from {c}"))
                    .unwrap_or_default()
            );
        }
        (None, 1) => {
            let failed = report.rules.iter().filter(|r| !r.passed).count();
            let _ = writeln!(out, "DENIED: {failed} rule(s) broken");
        }
        (None, _) => {
            let _ = writeln!(out, "INPUT ERROR: nothing was judged");
        }
    }
    out
}
