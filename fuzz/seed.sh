#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/<target>/, not committed) from the repository's own
# examples: the example CSRs (PEM and DER), the bad-input corpus of x509-svid.md §4 (PEM and
# DER, from examples/gen_bad_csrs.rs), the example policy documents, and for tlspc_answers the
# shapes TLSPC answers with (error bodies, key files, a configuration, an intermediate answer
# with openssl-made certificates). A tlspc_answers input starts with the digit of its reader.
# csr_content starts from its kept corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
csr=fuzz/corpus/decode_csr
pol=fuzz/corpus/policy_document
ans=fuzz/corpus/tlspc_answers
con=fuzz/corpus/csr_content
mkdir -p "$csr" "$pol" "$ans" "$con"
# csr_content: its kept corpus (fuzz/kept/csr_content, replayed by tests/fuzz_regressions.rs).
cp fuzz/kept/csr_content/* "$con/"
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
# tlspc_answers: 0 error bodies, 1 key files, 2 a configuration, 3 an intermediate answer, 4 token answers.
printf '0{"errors":[{"code":10001,"message":"Invalid api key"}]}' >"$ans/error-api"
printf '0{"error":"invalid_grant","error_description":"assertion expired"}' >"$ans/error-oauth"
printf '0<!DOCTYPE html><html><body>502 Bad Gateway</body></html>' >"$ans/error-html"
printf '0Invalid api key eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl' >"$ans/error-text"
for spec in "RSA rsa_keygen_bits:2048" "EC ec_paramgen_curve:P-256" "EC ec_paramgen_curve:P-384"; do
  set -- $spec
  { printf 1; openssl genpkey -algorithm "$1" -pkeyopt "$2" 2>/dev/null; } >"$ans/key-pkcs8-${2##*:}"
done
{ printf 1; openssl genpkey -algorithm ED25519 2>/dev/null; } >"$ans/key-pkcs8-ed25519"
{ printf 1; openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null; } >"$ans/key-sec1-p256"
jq -c '{id: "c1", name: "firefly-istio", policyIds: ["p1"], controllerAllowedPolicyIds: [],
        serviceAccountIds: [], policies: [. + {id: "p1"}], advancedSettings: {}}' "$src" |
  sed 's/^/2/' >"$ans/configuration"
tmp=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/root.key" \
  -subj "/CN=Seed Root" -days 30 -addext basicConstraints=critical,CA:true \
  -addext keyUsage=critical,keyCertSign,cRLSign -out "$tmp/root.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/sub.key" \
  -subj "/CN=Seed Sub-CA" -out "$tmp/sub.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/sub.csr" -CA "$tmp/root.pem" -CAkey "$tmp/root.key" -days 7 \
  -extfile "$tmp/ext" -out "$tmp/sub.pem" 2>/dev/null
jq -cn --rawfile cert "$tmp/sub.pem" --rawfile root "$tmp/root.pem" \
  '{id: "i1", commonName: "Seed Sub-CA", status: "ISSUED", certificate: $cert, issuerCertificates: [$root]}' |
  sed 's/^/3/' >"$ans/intermediate"
rm -rf "$tmp"
# 4: token answers, ordinary and with lifetimes at the edges.
for e in 900 0 18446744073709551615 -1 1e30 '"900"'; do
  printf '4{"access_token":"eyJhbGciOiJFUzI1NiJ9.e30.c2ln","token_type":"bearer","expires_in":%s}' "$e" \
    >"$ans/token-$(printf %s "$e" | tr -c 'a-z0-9' _)"
done
echo "seeded: $(ls "$csr" | wc -l) decode_csr inputs, $(ls "$pol" | wc -l) policy_document inputs, $(ls "$ans" | wc -l) tlspc_answers inputs, $(ls "$con" | wc -l) csr_content inputs"
