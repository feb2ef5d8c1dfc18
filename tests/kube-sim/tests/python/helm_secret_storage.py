"""The Helm v4 SDK (helm-python-sdk) against kube-sim with Helm's default release storage
(Secrets, written by client-go as protobuf): install, upgrade, uninstall of a one-ConfigMap chart.

Usage: helm_secret_storage.py KUBECONFIG. Prints "ok helm_secret_storage" on success; any failed
expectation exits non-zero with the reason."""

import json
import pathlib
import subprocess
import sys
import tempfile

import helm_python as helm


def expect(cond, msg):
    if not cond:
        print(f"FAILED: {msg}", file=sys.stderr)
        sys.exit(1)


def kubectl_json(kubeconfig, *args):
    out = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args, "-o", "json"], capture_output=True, text=True)
    expect(out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}")
    return json.loads(out.stdout)


def release_secrets(kubeconfig):
    items = kubectl_json(kubeconfig, "get", "secrets", "-n", "default", "-l", "owner=helm,name=demo")["items"]
    return sorted((i["metadata"]["name"], i["type"], i["metadata"]["labels"].get("status")) for i in items)


def main(kubeconfig):
    with tempfile.TemporaryDirectory() as d:
        chart = pathlib.Path(d) / "demo"
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
        (chart / "values.yaml").write_text("greeting: hello\n")
        (chart / "templates" / "cm.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo-cm\ndata:\n  greeting: {{ .Values.greeting | quote }}\n"
        )
        with helm.Config(kubeconfig_path=kubeconfig, namespace="default") as cfg:
            rel = cfg.install(str(chart), "demo", {"greeting": "hi"}, timeout=60)
            expect(rel.get("status") == "deployed", f"install: {str(rel)[:400]}")
            expect(
                release_secrets(kubeconfig) == [("sh.helm.release.v1.demo.v1", "helm.sh/release.v1", "deployed")],
                f"release Secret after install: {release_secrets(kubeconfig)}",
            )
            cm = kubectl_json(kubeconfig, "get", "configmap", "demo-cm", "-n", "default")
            expect(cm["data"] == {"greeting": "hi"}, f"ConfigMap: {cm['data']}")
            print("install with Secret storage: release v1 stored as a helm.sh/release.v1 Secret")

            rel = cfg.upgrade(str(chart), "demo", {"greeting": "hey"}, timeout=60)
            expect(rel.get("status") == "deployed", f"upgrade: {str(rel)[:400]}")
            expect(
                release_secrets(kubeconfig)
                == [
                    ("sh.helm.release.v1.demo.v1", "helm.sh/release.v1", "superseded"),
                    ("sh.helm.release.v1.demo.v2", "helm.sh/release.v1", "deployed"),
                ],
                f"release Secrets after upgrade: {release_secrets(kubeconfig)}",
            )
            cm = kubectl_json(kubeconfig, "get", "configmap", "demo-cm", "-n", "default")
            expect(cm["data"] == {"greeting": "hey"}, f"ConfigMap after upgrade: {cm['data']}")
            print("upgrade: v1 superseded (Secret updated), v2 deployed")

            cfg.uninstall("demo")
            expect(release_secrets(kubeconfig) == [], f"release Secrets after uninstall: {release_secrets(kubeconfig)}")
            print("uninstall: release Secrets removed")
    print("ok helm_secret_storage")


if __name__ == "__main__":
    main(sys.argv[1])
