#!/usr/bin/env python3
"""Independent judge of an X509-SVID, using py-spiffe (`spiffe` on PyPI).

Usage:
    spiffe_svid.py --chain CHAIN.pem --key KEY.pem --uri EXPECTED_SPIFFE_ID

CHAIN.pem holds the leaf first, then the intermediates; KEY.pem the workload's PKCS#8 private key.
`X509Svid.parse` applies the SPIFFE X509-SVID rules (exactly one SPIFFE ID URI SAN with a path, the
leaf not a CA, digitalSignature and neither keyCertSign nor cRLSign on the leaf, every
intermediate a CA with keyCertSign). The parsed SPIFFE ID must equal EXPECTED_SPIFFE_ID and the
leaf must carry the key's public key.

Exit status: 0 a valid SVID of that ID for that key; 1 it is not (the reason on stderr); 2 usage or
input error.
"""

import argparse
import sys

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from spiffe.svid.x509_svid import X509Svid


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
    except Exception as e:  # py-spiffe's errors share no base class with the parse errors
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


if __name__ == "__main__":
    sys.exit(main())
