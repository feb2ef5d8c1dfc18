//! Writes the example requests of examples/policies/ (used by `firefly policy check` in the README):
//! `cargo run --example gen_example_csrs [DIR]` (default examples/policies). Fresh keys each run;
//! the private keys are discarded.

use std::path::PathBuf;

use support::csr::{RawCsr, gn_dns, gn_uri, p256, rsa};

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies"))
        });
    std::fs::create_dir_all(&dir)?;
    let uri = "spiffe://cluster.local/ns/default/sa/sleep";
    let p = p256();
    let r = rsa(2048);
    let files = [
        (
            "istio-workload-p256.csr.pem",
            RawCsr::istio(&p, uri).pem(&p),
        ),
        (
            "istio-workload-rsa2048.csr.pem",
            RawCsr::istio(&r, uri).pem(&r),
        ),
        (
            "denied-dot-dot-segment.csr.pem",
            RawCsr::istio(&p, "spiffe://cluster.local/ns/../sa/x").pem(&p),
        ),
        (
            "denied-dns-name.csr.pem",
            RawCsr::istio(&p, uri)
                .with_sans(&[gn_uri(uri), gn_dns("sleep.default.svc")])
                .pem(&p),
        ),
    ];
    for (name, pem) in files {
        let path = dir.join(name);
        std::fs::write(&path, pem)?;
        println!("{}", path.display());
    }
    Ok(())
}
