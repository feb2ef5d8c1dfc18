#!/usr/bin/env python3
"""Independent judge of an X509-SVID, using py-spiffe (`spiffe` on PyPI).

Usage:
    spiffe_svid.py --chain CHAIN.pem --key KEY.pem --uri EXPECTED_SPIFFE_ID

CHAIN.pem holds the leaf first, then the intermediates; KEY.pem the workload's PKCS#8 private key.
`X509Svid.parse` applies the SPIFFE X509-SVID rules (exactly one SPIFFE ID URI SAN with a path, the
leaf not a CA, digitalSignature and neither keyCertSign nor cRLSign on the leaf, every
intermediate a CA with keyCertSign). The parsed SPIFFE ID must equal EXPECTED_SPIFFE_ID and the
leaf must carry the key's public key.

Exit status: 0 a valid SVID of that ID for that key; 1 it is not (py-spiffe raised one of its own
errors, or the ID or key differ; the reason on stderr); 2 usage or input error; 3 the judge itself
crashed (a missing library or any exception that is not py-spiffe's verdict, its traceback on
stderr): no verdict either way.
"""

import argparse
import sys
import traceback

# A judge that cannot start, or fails in an unexpected way, has no verdict: it must not be read as
# "not a valid SVID" (exit 1).
CRASHED = 3

try:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from spiffe.errors import PySpiffeError
    from spiffe.svid.x509_svid import X509Svid
except Exception:  # a missing or broken library
    traceback.print_exc()
    print("judge crashed: cannot import cryptography and py-spiffe", file=sys.stderr)
    sys.exit(CRASHED)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--uri", required=True)
    args = parser.parse_args()
    try:
        with open(args.chain, "rb") as f:
            chain = f.read()
        with open(args.key, "rb") as f:
            key = f.read()
    except OSError as e:
        print(f"input error: {e}", file=sys.stderr)
        return 2
    try:
        svid = X509Svid.parse(chain, key)
    except PySpiffeError as e:  # the base of every error py-spiffe raises on a bad SVID or key
        print(f"py-spiffe refused the SVID: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    got = str(svid.spiffe_id)
    if got != args.uri:
        print(f"SPIFFE ID {got!r}, expected {args.uri!r}", file=sys.stderr)
        return 1
    spki = lambda k: k.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if spki(svid.leaf.public_key()) != spki(svid.private_key.public_key()):
        print("the leaf does not carry the workload key's public key", file=sys.stderr)
        return 1
    print(f"py-spiffe: X509-SVID {got}, {len(svid.cert_chain)} certificates")
    return 0


def guarded() -> int:
    """main(), with any unexpected exception reported as a crash (exit 3), not as a refusal."""
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
