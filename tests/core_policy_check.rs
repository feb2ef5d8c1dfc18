//! `firefly policy check` through the real binary: exit codes 0/1/2, JSON for every exit code, text
//! that names each rule.

use std::path::{Path, PathBuf};
use std::process::Command;

use support::csr::{RawCsr, alg_rsa_sha256, fake_rsa_spki, gn_dns, gn_uri, p256};
use support::policies::ISTIO_POLICY_JSON;

const URI: &str = "spiffe://cluster.local/ns/default/sa/sleep";

struct Run {
    code: i32,
    stdout: String,
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_firefly"))
        .arg("policy")
        .arg("check")
        .args(args)
        .output()
        .expect("run firefly");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
    }
}

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn json_check(policy: &Path, csr: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec![
        "--policy",
        policy.to_str().expect("path"),
        "--csr",
        csr.to_str().expect("path"),
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let r = run(&args);
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", r.stdout));
    assert_eq!(
        v["exitCode"].as_u64(),
        Some(r.code as u64),
        "exitCode field matches the process exit code"
    );
    (r.code, v)
}

fn failed_rules(v: &serde_json::Value) -> Vec<String> {
    v["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| r["passed"] == false)
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["field"], r["value"], r["rule"], r["message"]
            )
        })
        .collect()
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write(dir.path(), "policy.json", ISTIO_POLICY_JSON.as_bytes());
    let key = p256();
    let csr = write(
        dir.path(),
        "good.csr.pem",
        RawCsr::istio(&key, URI).pem(&key).as_bytes(),
    );
    (dir, policy, csr)
}

#[test]
fn allowed_request_exits_0_and_shows_the_leaf() {
    let (_dir, policy, csr) = setup();
    let (code, v) = json_check(&policy, &csr, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["allowed"], true);
    assert_eq!(v["leaf"]["uris"][0], URI);
    assert_eq!(v["leaf"]["subject"], "");
    assert_eq!(v["leaf"]["sanCritical"], true);
    assert_eq!(
        v["leaf"]["extendedKeyUsages"],
        serde_json::json!(["SERVER_AUTH", "CLIENT_AUTH"])
    );
    assert_eq!(
        v["leaf"]["keyUsages"],
        serde_json::json!(["digitalSignature"])
    );
    assert_eq!(v["leaf"]["lifetime"], "1h0m0s");
    assert!(failed_rules(&v).is_empty());
}

#[test]
fn text_output_lists_each_rule_with_pass_or_fail_and_the_leaf() {
    let (_dir, policy, csr) = setup();
    let r = run(&[
        "--policy",
        policy.to_str().unwrap(),
        "--csr",
        csr.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    for needle in [
        "PASS  sans.uniformResourceIdentifiers",
        "SPIFFE ID",
        "ALLOWED",
        "notAfter",
        "URI:spiffe://cluster.local/ns/default/sa/sleep (critical)",
    ] {
        assert!(
            r.stdout.contains(needle),
            "{needle:?} missing from:\n{}",
            r.stdout
        );
    }
}

#[test]
fn longer_duration_is_reported_as_clamped() {
    let (_dir, policy, csr) = setup();
    let (code, v) = json_check(&policy, &csr, &["--duration", "2160h"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["leaf"]["clampedFrom"], "2160h0m0s");
}

#[test]
fn dot_dot_spiffe_id_that_the_regex_lets_through_exits_1() {
    let (dir, policy, _) = setup();
    let key = p256();
    let csr = write(
        dir.path(),
        "dotdot.pem",
        RawCsr::istio(&key, "spiffe://cluster.local/ns/../sa/x")
            .pem(&key)
            .as_bytes(),
    );
    let (code, v) = json_check(&policy, &csr, &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["allowed"], false);
    let failed = failed_rules(&v);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("SPIFFE ID") && failed[0].contains(".."),
        "{failed:?}"
    );
    // The policy regex itself passed: the SPIFFE rule is what caught it.
    let regex_passed = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["rule"] == "REQUIRED: allowedValues" && r["passed"] == true);
    assert!(regex_passed, "{v}");
}

#[test]
fn every_broken_rule_is_listed() {
    let (dir, policy, _) = setup();
    let key = p256();
    let pem = RawCsr::istio(&key, URI)
        .with_sans(&[gn_uri("spiffe://other.td/ns/a/sa/b"), gn_dns("x.example")])
        .pem(&key);
    let csr = write(dir.path(), "many.pem", pem.as_bytes());
    let (code, v) = json_check(
        &policy,
        &csr,
        &["--duration", "10s", "--trust-domain", "cluster.local"],
    );
    assert_eq!(code, 1, "{v}");
    let failed = failed_rules(&v).join("\n");
    for needle in ["sans.dnsNames", "allowedValues", "trust domain", "duration"] {
        assert!(failed.contains(needle), "{needle} missing from:\n{failed}");
    }
}

#[test]
fn bad_signature_and_weak_key_exit_1() {
    let (dir, policy, _) = setup();
    let key = p256();
    let other = p256();
    let forged = write(
        dir.path(),
        "forged.pem",
        RawCsr::istio(&key, URI).pem(&other).as_bytes(),
    );
    let (code, v) = json_check(&policy, &forged, &[]);
    assert_eq!(code, 1, "{v}");
    assert!(
        failed_rules(&v)[0].contains("signature does not verify"),
        "{v}"
    );

    let weak = RawCsr {
        spki: fake_rsa_spki(1024, 65537),
        sig_alg: alg_rsa_sha256(),
        ..RawCsr::istio(&key, URI)
    };
    let weak = write(dir.path(), "weak.pem", weak.pem(&key).as_bytes());
    let (code, v) = json_check(&policy, &weak, &[]);
    assert_eq!(code, 1, "{v}");
    assert!(failed_rules(&v)[0].contains("1024 bits"), "{v}");
}

#[test]
fn unreadable_or_unparseable_files_exit_2_with_json() {
    let (dir, policy, csr) = setup();
    let missing = dir.path().join("missing.json");
    let (code, v) = json_check(&missing, &csr, &[]);
    assert_eq!(code, 2);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("cannot read policy file"),
        "{v}"
    );

    let garbage = write(dir.path(), "garbage.json", b"{ not json");
    let (code, v) = json_check(&garbage, &csr, &[]);
    assert_eq!(code, 2);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not a PolicyInformation"),
        "{v}"
    );

    let not_pem = write(dir.path(), "not.pem", b"hello");
    let (code, v) = json_check(&policy, &not_pem, &[]);
    assert_eq!(code, 2);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not a certificate request"),
        "{v}"
    );

    let (code, v) = json_check(&policy, &csr, &["--trust-domain", "Bad_TD!"]);
    assert_eq!(code, 2);
    assert!(
        v["error"].as_str().unwrap().contains("--trust-domain"),
        "{v}"
    );
}

#[test]
fn invalid_policy_exits_2_naming_each_violation() {
    let (dir, _, csr) = setup();
    let mut doc: serde_json::Value = serde_json::from_str(ISTIO_POLICY_JSON).unwrap();
    doc["keyUsages"] = serde_json::json!(["digitalSignature", "keyCertSign"]);
    doc["extendedKeyUsages"] = serde_json::json!(["SERVER_AUTH", "ANY"]);
    doc["validityPeriod"] = serde_json::json!("one hour");
    let policy = write(dir.path(), "bad-policy.json", doc.to_string().as_bytes());
    let (code, v) = json_check(&policy, &csr, &[]);
    assert_eq!(code, 2, "{v}");
    let fields: Vec<&str> = v["policyViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["validityPeriod", "keyUsages[1]", "extendedKeyUsages[1]"],
        "{v}"
    );
    let text = run(&[
        "--policy",
        policy.to_str().unwrap(),
        "--csr",
        csr.to_str().unwrap(),
    ]);
    assert_eq!(text.code, 2);
    assert!(
        text.stdout
            .contains("INVALID  keyUsages[1]: keyCertSign is refused"),
        "{}",
        text.stdout
    );
}

#[test]
fn shipped_examples_give_the_documented_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies");
    let policy = root.join("istio-workloads.json");
    for (csr, expected) in [
        ("istio-workload-p256.csr.pem", 0),
        ("istio-workload-rsa2048.csr.pem", 0),
        ("denied-dot-dot-segment.csr.pem", 1),
        ("denied-dns-name.csr.pem", 1),
    ] {
        let (code, v) = json_check(&policy, &root.join(csr), &[]);
        assert_eq!(code, expected, "{csr}: {v}");
    }
}
