//! Independent judges: the openssl CLI and Python `cryptography` (tests/support/verify_chain.py).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The outcome of one external verification.
#[derive(Debug)]
pub struct Verdict {
    pub ok: bool,
    pub output: String,
}

/// Splits a PEM bundle into its certificates (each with BEGIN/END lines).
pub fn split_pem(bundle: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    bundle
        .split_inclusive(END)
        .map(str::trim)
        .filter(|s| s.contains("-----BEGIN CERTIFICATE-----"))
        .map(|s| format!("{s}\n"))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}

/// `openssl verify -x509_strict -purpose <purpose> -CAfile root -untrusted <intermediates> leaf`.
pub fn openssl_verify(chain_pem: &str, root_pem: &str, purpose: &str) -> Verdict {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = split_pem(chain_pem);
    assert!(!certs.is_empty(), "chain has no certificates");
    let leaf = write(dir.path(), "leaf.pem", &certs[0]);
    let root = write(dir.path(), "root.pem", root_pem);
    let mut cmd = Command::new("openssl");
    cmd.args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
        .arg(&root);
    if certs.len() > 1 {
        let untrusted = write(dir.path(), "untrusted.pem", &certs[1..].concat());
        cmd.arg("-untrusted").arg(untrusted);
    }
    cmd.arg(&leaf);
    let out = cmd
        .output()
        .expect("openssl must be installed (tests call it by name)");
    Verdict {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The Python with the independent verifiers (tests/requirements.txt: cryptography, PyJWT, the
/// Helm SDK, kubernetes-validate): $FIREFLY_TEST_PYTHON, else <repo>/.venv/bin/python. A missing
/// interpreter fails the test with the command that installs it; it never skips.
pub fn python() -> PathBuf {
    let python = std::env::var_os("FIREFLY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python with the test verifiers at {}: run scripts/test (it creates .venv from \
         tests/requirements.txt) or set FIREFLY_TEST_PYTHON to a Python that has them",
        python.display()
    );
    python
}

/// tests/support/verify_chain.py: cryptography's ClientVerifier, comparing the URI SAN.
pub fn python_verify(chain_pem: &str, root_pem: &str, uri: &str) -> Verdict {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = write(dir.path(), "chain.pem", chain_pem);
    let root = write(dir.path(), "root.pem", root_pem);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/verify_chain.py");
    let python = python();
    let out = Command::new(&python)
        .arg(script)
        .arg("--chain")
        .arg(chain)
        .arg("--root")
        .arg(root)
        .arg("--uri")
        .arg(uri)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {} ({e}): set FIREFLY_TEST_PYTHON to a Python with `cryptography` or run scripts/test", python.display())
        });
    assert!(
        out.status.code() != Some(2),
        "verify_chain.py usage/input error: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Verdict {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
