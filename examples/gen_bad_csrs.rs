//! Writes the bad-input corpus (x509-svid.md §4) to a directory, one file per case, for inspection
//! or for seeding the fuzzers: `cargo run --example gen_bad_csrs -- DIR`. The tests generate the same
//! fixtures in memory from tests/support/corpus.rs.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gen_bad_csrs DIR");
        std::process::exit(2);
    };
    std::fs::create_dir_all(&dir)?;
    for case in support::corpus::bad_requests() {
        let path = dir.join(format!("{}.csr.pem", case.name));
        std::fs::write(&path, &case.csr_pem)?;
        println!("{}\t{}\t{:?}", path.display(), case.item, case.expect);
    }
    Ok(())
}
