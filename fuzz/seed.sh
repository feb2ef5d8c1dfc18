#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/<target>/, not committed) from the repository's own
# examples: the example CSRs (PEM and DER), the bad-input corpus of x509-svid.md §4 (PEM and
# DER, from examples/gen_bad_csrs.rs), and the example policy documents.
set -euo pipefail
cd "$(dirname "$0")/.."
csr=fuzz/corpus/decode_csr
pol=fuzz/corpus/policy_document
mkdir -p "$csr" "$pol"
bad=$(mktemp -d)
trap 'rm -rf "$bad"' EXIT
cargo run --quiet --example gen_bad_csrs -- "$bad" >/dev/null
for f in examples/policies/*.csr.pem "$bad"/*.csr.pem; do
  base=$(basename "$f" .csr.pem)
  cp "$f" "$csr/$base.pem"
  # The DER bytes exactly as encoded (no re-encoding through a parser); cases that are not
  # valid PEM (the point of some of them) have no DER form.
  tr -d '\r' <"$f" | sed -n '/-----BEGIN/,/-----END/{/-----/d;p}' | base64 -d >"$csr/$base.der" 2>/dev/null ||
    rm -f "$csr/$base.der"
done
cp examples/policies/*.json "$pol/"
# Variants of the example policy: each property type on a subject field and a SAN type, regex
# and wildcard allowed values, other validity periods.
src=examples/policies/istio-workloads.json
i=0
for t in IGNORED FORBIDDEN OPTIONAL REQUIRED LOCKED; do
  jq --arg t "$t" '.subject.organization.type = $t | .subject.organization.allowedValues = ["^[a-z.-]+$", "example.org"]
    | .sans.dnsNames.type = $t | .sans.dnsNames.allowedValues = ["*.svc.cluster.local"] | .sans.dnsNames.maxOccurrences = 2' \
    "$src" >"$pol/variant-$i.json"
  i=$((i + 1))
done
for v in P1D PT15M P1Y2M3DT4H5M6S PT0S; do
  jq --arg v "$v" '.validityPeriod = $v' "$src" >"$pol/variant-$i.json"
  i=$((i + 1))
done
echo "seeded: $(ls "$csr" | wc -l) decode_csr inputs, $(ls "$pol" | wc -l) policy_document inputs"
