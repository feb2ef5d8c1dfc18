//! Lock failure refuses with the capability and limit to fix: this suite re-runs itself as an unprivileged user with RLIMIT_MEMLOCK 0 (util-linux `setpriv` and `prlimit`).

use firefly::bootstrap::locked_key::LockedKey;
use firefly::config::LockMode;
use firefly::policy::model::KeyAlgorithm;

/// Set in the child run only (through `Command::env`, never `set_var`).
const PROBE: &str = "FIREFLY_LOCK_PROBE";

/// Generates a locked key: succeeds in this (privileged) test process; in the unprivileged child
/// it must fail, and prints the error for the parent to judge.
#[test]
fn key_generation_under_the_current_limits() {
    let outcome = LockedKey::generate(KeyAlgorithm::EcP256, LockMode::KeyPages);
    if std::env::var_os(PROBE).is_some() {
        let err = outcome.expect_err("locking must fail with RLIMIT_MEMLOCK 0 and no CAP_IPC_LOCK");
        println!("LOCK-ERROR: {err}");
    } else {
        assert!(
            outcome
                .expect("locking works in the test process")
                .is_locked()
        );
    }
}

#[test]
fn lock_failure_names_cap_ipc_lock_and_ulimit() {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new("prlimit")
        .arg("--memlock=0")
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "key_generation_under_the_current_limits",
            "--nocapture",
        ])
        .env(PROBE, "1")
        .output()
        .expect("prlimit and setpriv (util-linux) must be installed to run this test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("LOCK-ERROR:"))
        .unwrap_or_else(|| panic!("no error printed:\n{stdout}\n{stderr}"));
    assert!(line.contains("CAP_IPC_LOCK"), "{line}");
    assert!(line.contains("ulimit -l"), "{line}");
    assert!(line.contains("signer.lockMode=keyPages"), "{line}");
    assert!(line.contains("now 0 bytes"), "{line}");
}
