//! Independent judges: the openssl CLI, Python `cryptography` (`scripts/verify_chain.py` of this
//! crate), pkilint (`scripts/lint_chain.py`) and py-spiffe (`scripts/spiffe_svid.py`).

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

/// `openssl verify -x509_strict -purpose <purpose> -CAfile root -untrusted <intermediates> leaf`
/// of a chain (leaf first) against `root_pem`. `purpose` is openssl's (`sslclient`, `sslserver`,
/// `any`).
pub fn openssl_verify(chain_pem: &str, root_pem: &str, purpose: &str) -> Verdict {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = split_pem(chain_pem);
    assert!(!certs.is_empty(), "chain has no certificates");
    verify_in(dir.path(), &certs[0], &certs[1..], root_pem, Some(purpose))
        .expect("openssl must be installed (tests call it by name)")
}

/// `openssl verify -x509_strict` of `leaf_pem` against `root_pem` with `untrusted` in between,
/// files written to `dir`; returns (verified, openssl's output).
pub fn openssl_verify_parts(
    dir: &Path,
    root_pem: &str,
    untrusted: &[String],
    leaf_pem: &str,
) -> (bool, String) {
    let v = verify_in(dir, leaf_pem, untrusted, root_pem, None)
        .expect("openssl must be installed (tests call it by name)");
    (v.ok, v.output)
}

/// The one place the suites run `openssl verify`: always `-x509_strict`; verified means openssl
/// exited 0 and printed its `: OK` line.
///
/// # Errors
/// Writing the files or starting openssl (`NotFound` when it is not on PATH).
pub fn verify_in(
    dir: &Path,
    leaf_pem: &str,
    untrusted: &[String],
    root_pem: &str,
    purpose: Option<&str>,
) -> std::io::Result<Verdict> {
    let write = |name: &str, text: &str| -> std::io::Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        Ok(p)
    };
    let leaf = write("verify-leaf.pem", leaf_pem)?;
    let root = write("verify-root.pem", root_pem)?;
    let mut cmd = Command::new("openssl");
    cmd.args(["verify", "-x509_strict"]);
    if let Some(purpose) = purpose {
        cmd.args(["-purpose", purpose]);
    }
    cmd.arg("-CAfile").arg(&root);
    if !untrusted.is_empty() {
        let chain = write("verify-untrusted.pem", &untrusted.concat())?;
        cmd.arg("-untrusted").arg(chain);
    }
    let out = cmd.arg(&leaf).output()?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Verdict {
        ok: out.status.success() && output.contains(": OK"),
        output,
    })
}

/// The Python with the independent verifiers (tests/requirements.txt: cryptography, PyJWT, the
/// Helm SDK, kubernetes-validate, pkilint, py-spiffe): $FIREFLY_TEST_PYTHON, else <repo>/.venv/bin/python. A missing
/// interpreter fails the test with the command that installs it; it never skips.
pub fn python() -> PathBuf {
    let python = std::env::var_os("FIREFLY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python with the test verifiers at {}: run scripts/test (it creates .venv from \
         tests/requirements.txt) or set FIREFLY_TEST_PYTHON to a Python that has them",
        python.display()
    );
    python
}

/// `scripts/verify_chain.py`: cryptography's ClientVerifier, comparing the URI SAN.
pub fn python_verify(chain_pem: &str, root_pem: &str, uri: &str) -> Verdict {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = write(dir.path(), "chain.pem", chain_pem);
    let root = write(dir.path(), "root.pem", root_pem);
    run_script(
        "verify_chain.py",
        "`cryptography`",
        &[
            "--chain".as_ref(),
            chain.as_os_str(),
            "--root".as_ref(),
            root.as_os_str(),
            "--uri".as_ref(),
            uri.as_ref(),
        ],
    )
}

/// `scripts/lint_chain.py`: pkilint's RFC 5280 linters on the leaf and on every issuer → subject
/// link up to `root_pem`, findings of severity WARNING and above (its `pkix.invalid_uri_syntax`
/// on a `spiffe://` URI is a known false positive and is not counted).
pub fn pkilint_verify(chain_pem: &str, root_pem: &str) -> Verdict {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = write(dir.path(), "chain.pem", chain_pem);
    let root = write(dir.path(), "root.pem", root_pem);
    run_script(
        "lint_chain.py",
        "pkilint",
        &[
            "--chain".as_ref(),
            chain.as_os_str(),
            "--root".as_ref(),
            root.as_os_str(),
        ],
    )
}

/// `scripts/spiffe_svid.py`: py-spiffe's `X509Svid.parse` (the SPIFFE X509-SVID rules) on the
/// chain (leaf first) and the workload's PKCS#8 key; the SPIFFE ID must be `uri` and the leaf
/// must carry the key.
pub fn spiffe_verify(chain_pem: &str, key_pem: &str, uri: &str) -> Verdict {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = write(dir.path(), "chain.pem", chain_pem);
    let key = write(dir.path(), "key.pem", key_pem);
    run_script(
        "spiffe_svid.py",
        "py-spiffe (`spiffe`)",
        &[
            "--chain".as_ref(),
            chain.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
            "--uri".as_ref(),
            uri.as_ref(),
        ],
    )
}

/// Exit codes of this crate's judge scripts (each documents them): a verdict for (0) or against
/// (1); 2 a usage or input error; 3 the judge crashed (a missing library or an unexpected
/// exception). Only 0 and 1 are verdicts.
const JUDGE_PASSED: i32 = 0;
const JUDGE_REFUSED: i32 = 1;
const JUDGE_USAGE: i32 = 2;
const JUDGE_CRASHED: i32 = 3;

/// Runs one of this crate's judge scripts with [`python`]; exit 0 is a pass, 1 a verdict against.
/// Anything else fails the test at once: 2 (usage or input error), 3 (the judge crashed), any
/// other code or a signal, so that a broken judge never passes a test expecting a refusal.
fn run_script(script: &str, needs: &str, args: &[&std::ffi::OsStr]) -> Verdict {
    let python = python();
    let out = Command::new(&python)
        .arg(crate::script(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {} ({e}): set FIREFLY_TEST_PYTHON to a Python with {needs} or run scripts/test", python.display())
        });
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !output.contains("ModuleNotFoundError"),
        "{script} needs {needs} in {}: run scripts/test (it installs tests/requirements.txt) or set FIREFLY_TEST_PYTHON: {output}",
        python.display()
    );
    let ok = verdict_of(script, out.status.code(), &output);
    Verdict { ok, output }
}

/// The verdict a judge's exit code carries; panics on every code that is not a verdict.
fn verdict_of(script: &str, code: Option<i32>, output: &str) -> bool {
    match code {
        Some(JUDGE_PASSED) => true,
        Some(JUDGE_REFUSED) => false,
        Some(JUDGE_USAGE) => panic!("{script} usage/input error (exit 2): {output}"),
        Some(JUDGE_CRASHED) => panic!("{script} crashed (exit 3), no verdict: {output}"),
        Some(other) => panic!("{script} exited {other}, which is not a verdict: {output}"),
        None => panic!("{script} was killed by a signal, no verdict: {output}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{JUDGE_CRASHED, python, verdict_of};
    use std::process::Command;

    #[test]
    fn only_exit_0_and_1_are_verdicts() {
        assert!(verdict_of("judge.py", Some(0), ""));
        assert!(!verdict_of("judge.py", Some(1), ""));
        for code in [Some(2), Some(3), Some(4), Some(101), None] {
            let read = std::panic::catch_unwind(|| verdict_of("judge.py", code, "boom"));
            assert!(read.is_err(), "exit {code:?} was read as a verdict");
        }
    }

    /// Runs `script` with `python_args` before it; returns (exit code, stdout + stderr).
    fn run(python_args: &[&str], script: &str, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(python())
            .args(python_args)
            .arg(crate::script(script))
            .args(args)
            .output()
            .expect("python runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    #[test]
    fn a_judge_without_its_libraries_exits_3_not_1() {
        // `-S`: no site-packages, so cryptography, pkilint and py-spiffe do not import.
        for script in ["verify_chain.py", "lint_chain.py", "spiffe_svid.py"] {
            let (code, text) = run(&["-S"], script, &["--help"]);
            assert_eq!(code, Some(JUDGE_CRASHED), "{script}: {text}");
            assert!(
                text.contains("ModuleNotFoundError") && text.contains("judge crashed"),
                "{script}: {text}"
            );
        }
    }

    #[test]
    fn an_unexpected_exception_in_a_judge_exits_3_not_1() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::PkiBuilder::default().build();
        let root = dir.path().join("root.pem");
        std::fs::write(&root, &pki.root_pem).unwrap();
        // A time past what a platform time_t holds: datetime raises OverflowError, which is no
        // verification failure.
        let root = root.to_str().unwrap();
        let (code, text) = run(
            &[],
            "verify_chain.py",
            &[
                "--chain",
                root,
                "--root",
                root,
                "--uri",
                "spiffe://x/y",
                "--time",
                "1000000000000000000000000000000",
            ],
        );
        assert_eq!(code, Some(JUDGE_CRASHED), "{text}");
        assert!(
            text.contains("OverflowError") && text.contains("judge crashed"),
            "{text}"
        );
        let read = std::panic::catch_unwind(|| verdict_of("verify_chain.py", code, &text));
        assert!(read.is_err(), "a crash was read as a verdict");
    }
}
