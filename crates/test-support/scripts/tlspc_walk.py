"""Walks the TLSPC instance flow against a running mock with code that is not ours.

token (JWT minted with PyJWT) -> configuration -> intermediate request -> poll until ISSUED.
Writes subca.pem and chain.pem (issuerCertificates without the root) into --out-dir and prints one
JSON summary line. Exits non-zero with a message on any deviation from the contract.

Usage: tlspc_walk.py --base-url URL --client-id-file FILE --key-file FILE --out-dir DIR
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

AUDIENCE = "api.venafi.cloud/v1/oauth/token/serviceaccount"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_POLLS = 50


def fail(message):
    print(f"tlspc_walk: {message}", file=sys.stderr)
    sys.exit(1)


def call(method, url, headers=None, body=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def jwt_algorithm(key):
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384"}[key.curve.name]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    fail(f"unsupported service-account key type {type(key).__name__}")


def new_sub_ca_key(algorithm):
    if algorithm == "EC_P256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EC_P384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm.startswith("RSA_"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    fail(f"walk does not generate {algorithm} sub-CA keys")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--client-id-file", required=True)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()
    base = args.base_url.rstrip("/")
    client_id = open(args.client_id_file).read().strip()
    key = serialization.load_pem_private_key(open(args.key_file, "rb").read(), password=None)

    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": AUDIENCE, "iat": now, "exp": now + 300,
              "jti": str(uuid.uuid4())}
    assertion = jwt.encode(claims, key, algorithm=jwt_algorithm(key))
    form = urllib.parse.urlencode({"grant_type": GRANT, "assertion": assertion}).encode()
    status, body = call("POST", base + "/v1/oauth/token/serviceaccount",
                        {"Content-Type": "application/x-www-form-urlencoded"}, form)
    if status != 200:
        fail(f"token exchange answered {status}: {body[:300]!r}")
    token = json.loads(body)
    if token.get("token_type", "").lower() != "bearer" or not token.get("access_token"):
        fail(f"token answer lacks a bearer token: {sorted(token)}")
    auth = {"Authorization": "Bearer " + token["access_token"]}

    status, body = call("GET", base + "/v1/distributedissuers/configurations", auth)
    if status != 200:
        fail(f"configuration answered {status}: {body[:300]!r}")
    configurations = json.loads(body)["configurations"]
    if len(configurations) != 1:
        fail(f"expected exactly the attached configuration, got {len(configurations)}")
    config = configurations[0]
    provider = config["subCaProvider"]
    policies = [p["name"] for p in config["policies"]]

    sub_key = new_sub_ca_key(provider["keyAlgorithm"])
    common_name = f"python-walk {provider['commonName']}"
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
           .sign(sub_key, hashes.SHA256()))
    request = {"configurationId": config["id"], "instanceNaming": "python-walk",
               "certificateSigningRequest": csr.public_bytes(serialization.Encoding.PEM).decode()}
    status, body = call("POST", base + "/v1/distributedissuers/intermediatecertificates",
                        dict(auth, **{"Content-Type": "application/json"}), json.dumps(request).encode())
    if status != 201:
        fail(f"intermediate request answered {status}: {body[:300]!r}")
    created = json.loads(body)
    if created["status"] != "REQUESTED":
        fail(f"new request has status {created['status']}, expected REQUESTED")

    polls = 0
    while True:
        polls += 1
        status, body = call("GET", base + "/v1/distributedissuers/intermediatecertificates/" + created["id"], auth)
        if status != 200:
            fail(f"poll answered {status}: {body[:300]!r}")
        answer = json.loads(body)
        if answer["status"] == "ISSUED":
            break
        if answer["status"] != "REQUESTED" or polls >= MAX_POLLS:
            fail(f"request ended {answer['status']} after {polls} polls: {answer.get('errorInformation')}")
        time.sleep(0.05)

    cert = x509.load_pem_x509_certificate(answer["certificate"].encode())
    if cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            sub_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        fail("issued sub-CA does not certify the CSR's key")
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    chain = answer["issuerCertificates"]
    with open(f"{args.out_dir}/subca.pem", "w") as f:
        f.write(answer["certificate"])
    with open(f"{args.out_dir}/chain.pem", "w") as f:
        f.write("".join(chain[:-1]))
    print(json.dumps({
        "configuration": config["name"], "policies": policies, "polls": polls,
        "commonName": cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
        "ca": bc.value.ca, "pathLength": bc.value.path_length, "basicConstraintsCritical": bc.critical,
        "keyCertSign": ku.value.key_cert_sign, "keyUsageCritical": ku.critical,
        "issuerCertificates": len(chain),
    }))


if __name__ == "__main__":
    main()
