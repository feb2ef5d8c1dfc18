#!/usr/bin/env python3
"""Independent judge of a certificate chain's encoding, using pkilint's RFC 5280 linters.

Usage:
    lint_chain.py --chain CHAIN.pem --root ROOT.pem

CHAIN.pem holds the leaf first, then the intermediates (sub-CA upward; the root may be absent).
ROOT.pem holds the single trust anchor. The leaf is linted on its own (`lint_pkix_cert`) and every
link of the path, issuer above subject up to ROOT (`lint_pkix_signer_signee_cert_chain`: names,
key identifiers, policies, signature), each with findings of severity WARNING and above.

pkilint's URI syntax check knows only web schemes: its `pkix.invalid_uri_syntax` on a `spiffe://`
URI is a known false positive and is not counted (it is still printed). Every other finding is.

Exit status: 0 no finding; 1 findings (printed as JSON lines on stderr); 2 usage or input error;
3 the judge itself crashed (a missing library, pkilint failing to load a certificate or any other
unexpected exception, the reason on stderr): no verdict either way.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import traceback

# A judge that cannot start, or fails in an unexpected way, has no verdict: it must not be read as
# "findings" (exit 1).
CRASHED = 3

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from pkilint.bin import lint_pkix_cert, lint_pkix_signer_signee_cert_chain
except Exception:  # a missing or broken library
    traceback.print_exc()
    print("judge crashed: cannot import cryptography and pkilint", file=sys.stderr)
    sys.exit(CRASHED)

FALSE_POSITIVE = "pkix.invalid_uri_syntax"


def run(linter, paths):
    """Runs one pkilint command line in this process; returns its JSON report."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        linter.main(["lint", "-s", "WARNING", "-f", "JSON", *paths])
    # pkilint prints no report when it cannot load a certificate (its reason is on stderr): the
    # JSON error below is then a crash, not a finding.
    return json.loads(out.getvalue())


def findings(report, what):
    counted, ignored = [], []
    for result in report.get("results", []):
        for f in result.get("finding_descriptions", []):
            entry = {"what": what, "node": result.get("node_path"), "validator": result.get("validator"), **f}
            message = f.get("message") or ""
            if f.get("code") == FALSE_POSITIVE and '"spiffe://' in message:
                ignored.append(entry)
            else:
                counted.append(entry)
    return counted, ignored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", required=True)
    parser.add_argument("--root", required=True)
    args = parser.parse_args()
    try:
        with open(args.chain, "rb") as f:
            chain = x509.load_pem_x509_certificates(f.read())
        with open(args.root, "rb") as f:
            roots = x509.load_pem_x509_certificates(f.read())
    except (OSError, ValueError) as e:
        print(f"input error: {e}", file=sys.stderr)
        return 2
    if not chain or len(roots) != 1:
        print(f"input error: {len(chain)} chain certificates and {len(roots)} roots (need ≥ 1 and 1)", file=sys.stderr)
        return 2
    path = list(chain)
    if path[-1].fingerprint(path[-1].signature_hash_algorithm) != roots[0].fingerprint(
        roots[0].signature_hash_algorithm
    ):
        path.append(roots[0])
    counted, ignored = [], []
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, cert in enumerate(path):
            p = os.path.join(tmp, f"{i}.pem")
            with open(p, "wb") as f:
                f.write(cert.public_bytes(Encoding.PEM))
            files.append(p)
        c, g = findings(run(lint_pkix_cert, [files[0]]), "leaf")
        counted += c
        ignored += g
        for i in range(len(files) - 1):
            what = f"link {i + 1} -> {i} ({path[i + 1].subject.rfc4514_string()} -> {path[i].subject.rfc4514_string()})"
            c, g = findings(run(lint_pkix_signer_signee_cert_chain, [files[i + 1], files[i]]), what)
            counted += c
            ignored += g
    for entry in ignored:
        print("ignored (known false positive): " + json.dumps(entry))
    for entry in counted:
        print(json.dumps(entry), file=sys.stderr)
    if counted:
        return 1
    print(f"pkilint: no finding on the leaf and {len(path) - 1} links")
    return 0


def guarded() -> int:
    """main(), with any unexpected exception reported as a crash (exit 3), not as findings."""
    try:
        return main()
    except SystemExit:  # argparse's usage errors (2) and explicit exits keep their code
        raise
    except BaseException:
        traceback.print_exc()
        print("judge crashed: unexpected exception (no verdict)", file=sys.stderr)
        return CRASHED


if __name__ == "__main__":
    sys.exit(guarded())
