//! Fuzzes CSR content × policy: the input chooses the request's content (subject, SANs of every
//! type incl. SPIFFE IDs, key usages, extensions, key type) and knobs; the request is signed with a
//! fixed key so it passes the signature check, then runs through decode, the SPIFFE rules, the
//! policy decision, the leaf template, signing and post-sign validation
//! (`support::csr_content::exercise`, which the regression suite replays on the kept corpus).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    support::csr_content::exercise(data);
});
