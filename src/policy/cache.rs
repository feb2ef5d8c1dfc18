//! placeholder: the policy cache (last-known-good, staleness); replaced as that work lands.
