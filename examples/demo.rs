//! The demo (README's first command): kube-sim, the mock TLSPC and the controller in one process,
//! playing istio-csr and cert-manager's approver for 1,000 workloads.

#[path = "../tests/support/e2e.rs"]
mod e2e;

fn main() -> anyhow::Result<()> {
    let pool = e2e::KeyPool::generate(4, 4)?;
    for i in 0..4 {
        let (kind, key) = pool.key_for(i);
        let pem = e2e::istio_agent_csr_pem(key, &e2e::workload_spiffe_id(i))?;
        let req = firefly::csr::decode_pem(pem.as_bytes())?;
        println!("{} {:?}", kind.label(), req.sans.uris);
        std::fs::write(format!("/tmp/demo-csr-{i}.pem"), pem)?;
    }
    Ok(())
}
