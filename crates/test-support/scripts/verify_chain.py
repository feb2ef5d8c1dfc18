#!/usr/bin/env python3
"""Independent judge of a certificate chain, using Python `cryptography`'s RFC 5280 verifier.

Usage:
    verify_chain.py --chain CHAIN.pem --root ROOT.pem --uri EXPECTED_URI [--time UNIX_SECONDS]

CHAIN.pem holds the leaf first, then the intermediates (sub-CA upward; the root may be absent).
ROOT.pem holds the single trust anchor. The leaf is verified as a TLS *client* certificate
(ClientVerifier: the path must build to ROOT, every link must verify, EKU clientAuth must be present)
and the URI SANs the verifier reports must be exactly [EXPECTED_URI].
--time defaults to now.

Exit status: 0 verified and the URI matches; 1 verification failed or the URI differs (the reason is
printed on stderr); 2 usage or input error; 3 the judge itself crashed (a missing library or any
unexpected exception, its traceback on stderr): no verdict either way. cryptography's verifier
accepts RSA and ECDSA signatures only: chains with an Ed25519 link must be judged by openssl alone.
"""

import argparse
import datetime
import sys
import traceback

# A judge that cannot start, or fails in an unexpected way, has no verdict: it must not be read as
# "verification failed" (exit 1), which negative tests expect.
CRASHED = 3

try:
    from cryptography import x509
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
except Exception:  # a missing or broken library
    traceback.print_exc()
    print("judge crashed: cannot import cryptography", file=sys.stderr)
    sys.exit(CRASHED)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--time", type=int)
    args = parser.parse_args()
    try:
        with open(args.chain, "rb") as f:
            chain = x509.load_pem_x509_certificates(f.read())
        with open(args.root, "rb") as f:
            roots = x509.load_pem_x509_certificates(f.read())
    except (OSError, ValueError) as e:
        print(f"input error: {e}", file=sys.stderr)
        return 2
    if not chain:
        print("input error: the chain is empty", file=sys.stderr)
        return 2
    when = (
        datetime.datetime.fromtimestamp(args.time, tz=datetime.timezone.utc)
        if args.time is not None
        else datetime.datetime.now(tz=datetime.timezone.utc)
    )
    verifier = PolicyBuilder().store(Store(roots)).time(when).build_client_verifier()
    try:
        verified = verifier.verify(chain[0], chain[1:])
    except VerificationError as e:
        print(f"verification failed: {e}", file=sys.stderr)
        return 1
    uris = [n.value for n in (verified.subjects or []) if isinstance(n, x509.UniformResourceIdentifier)]
    if uris != [args.uri]:
        print(f"URI SANs are {uris!r}, expected [{args.uri!r}]", file=sys.stderr)
        return 1
    print(f"verified: {args.uri}")
    return 0


def guarded() -> int:
    """main(), with any unexpected exception reported as a crash (exit 3), not as a verdict."""
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
