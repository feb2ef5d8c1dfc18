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

/// Every form in which `der` (a private key) could show up in a `Debug` text, each cut into
/// windows so that a partial leak (the bare private scalar inside the PKCS#8 document, one PEM
/// line) is found too: lowercase and uppercase hex of every 12-byte window, Rust's `[48, 129, …]`
/// list of every 8-byte window, and every 16-character window of the base64 (PEM body) text.
fn encodings_of(der: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    let mut forms = Vec::new();
    for w in der.windows(12) {
        let hex: String = w.iter().map(|b| format!("{b:02x}")).collect();
        forms.push(hex.to_uppercase());
        forms.push(hex);
    }
    for w in der.windows(8) {
        let list = format!("{w:?}");
        forms.push(list[1..list.len() - 1].to_owned());
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let chars: Vec<char> = b64.chars().collect();
    for w in chars.windows(16) {
        forms.push(w.iter().collect());
    }
    forms
}

#[tokio::test]
async fn the_debug_output_of_the_handles_names_no_key_material() {
    let env = EnvBuilder::default().start().await;
    let bootstrap = env.bootstrap().await.expect("starts");
    // The service-account key the bootstrap logged in with, from the file it read: the one
    // private key whose bytes the test can know (the sub-CA key never leaves locked memory).
    let pem_text = std::fs::read_to_string(env.key_path()).expect("the service-account key file");
    let key_der = pem::parse(&pem_text)
        .expect("the key file is PEM")
        .into_contents();
    assert!(pem_text.contains("PRIVATE KEY"), "{pem_text:.40}");
    let account_key =
        firefly::bootstrap::client::ServiceAccountKey::load(&env.key_path()).expect("key loads");
    let sub_ca = bootstrap.signer().current().expect("a sub-CA is active");
    let text = format!(
        "{bootstrap:?} {:?} {sub_ca:?} {account_key:?}",
        bootstrap.signer(),
    );
    assert!(!text.contains("PRIVATE"), "{text}");
    for form in encodings_of(&key_der) {
        assert!(
            !text.contains(&form),
            "the service-account key shows in Debug output as {form:?}: {text}"
        );
    }
    // The handles that hold keys say so with a placeholder, rather than by leaving a field out.
    assert!(text.contains("Signer"), "{text}");
    assert!(
        text.contains("key: \"...\""),
        "no sub-CA key placeholder: {text}"
    );
    assert!(
        text.contains("ServiceAccountKey(") && text.contains("<redacted>"),
        "no service-account key placeholder: {text}"
    );
}
