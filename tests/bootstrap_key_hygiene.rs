//! Key hygiene of a real bootstrap against the mock: the sub-CA key's pages are locked (VmLck), the process is not dumpable and has no core limit.

use support::bootstrap::EnvBuilder;

fn vm_lck_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmLck:"))
        .expect("VmLck line");
    line.split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("number")
}

#[tokio::test]
async fn after_bootstrap_the_key_is_locked_and_the_process_is_not_dumpable() {
    let env = EnvBuilder::default().start().await;
    let before = vm_lck_kib();
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    assert!(signer.key_is_locked());
    assert!(
        vm_lck_kib() > before,
        "VmLck did not grow: {before} KiB -> {} KiB",
        vm_lck_kib()
    );
    assert!(
        !firefly::bootstrap::locked_key::process_is_dumpable(),
        "PR_SET_DUMPABLE 0 was not applied"
    );
    assert_eq!(
        firefly::bootstrap::locked_key::core_file_limit(),
        Some(0),
        "core-file limit is not 0"
    );
}

#[tokio::test]
async fn the_debug_output_of_the_handles_names_no_key_material() {
    let env = EnvBuilder::default().start().await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let text = format!(
        "{bootstrap:?} {:?} {:?}",
        bootstrap.signer(),
        bootstrap.signer().current()
    );
    assert!(!text.contains("PRIVATE"), "{text}");
    assert!(text.contains("Signer"), "{text}");
}
