"""Drive kube-sim with the official Python `kubernetes` client and print what it saw as JSON.

Usage: client_check.py KUBECONFIG NAMESPACE
Lists CertificateRequests, patches one's status, reads a Lease, then watches from the list's
resourceVersion while creating a new request, and prints a JSON summary on stdout.
"""
import json
import sys

from kubernetes import client, config, watch

GROUP, VERSION, PLURAL = "cert-manager.io", "v1", "certificaterequests"


def main() -> int:
    kubeconfig, ns = sys.argv[1], sys.argv[2]
    api_client = config.new_client_from_config(config_file=kubeconfig)
    custom = client.CustomObjectsApi(api_client)
    coordination = client.CoordinationV1Api(api_client)
    out = {}

    listed = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
    out["listed"] = sorted(item["metadata"]["name"] for item in listed["items"])
    rv = listed["metadata"]["resourceVersion"]

    patched = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "r0",
        {"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "Issued",
            "message": "signed", "lastTransitionTime": "2026-01-01T00:00:00Z",
        }]}},
    )
    out["patched_ready"] = [c["status"] for c in patched["status"]["conditions"] if c["type"] == "Ready"]

    lease = coordination.read_namespaced_lease("leader", ns)
    out["lease_holder"] = lease.spec.holder_identity
    out["lease_duration"] = lease.spec.lease_duration_seconds

    body = {
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "from-python"},
        "spec": {"request": "aGVsbG8=", "issuerRef": {"name": "firefly", "kind": "Issuer", "group": "firefly.venafi.com"}},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)

    events = []
    w = watch.Watch()
    for ev in w.stream(custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL,
                       resource_version=rv, timeout_seconds=20):
        events.append([ev["type"], ev["object"]["metadata"]["name"]])
        if ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "from-python":
            w.stop()
    out["watched"] = events

    try:
        custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "absent")
        out["missing_status"] = None
    except client.exceptions.ApiException as e:
        out["missing_status"] = e.status
        out["missing_reason"] = json.loads(e.body)["reason"]

    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
