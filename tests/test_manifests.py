"""Offline checks of k8s/ and its wiring to stack.yml and faceblur.config.

Nothing here talks to a cluster. Generic hygiene is one pass: every manifest is
validated against the Kubernetes JSON schemas that ship inside the
`kubernetes-validate` wheel (no download: sockets are refused while validating)
and against one small schema of pod hygiene (restricted pod security, memory
limits, probes). The rest are project-specific cross-checks that make drift
fail: names, keys, ports and buckets must agree between the manifests, the
secret script, stack.yml and the settings module. Each cross-check also runs on
a deliberately broken copy, so a check that can never fail would show up here.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_settings import function_environment, generated_files

from conftest import settings_with_secret_files
from faceblur import config

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
STACK = ROOT / "stack.yml"
# The Kubernetes version the manifests are validated against (README's `minikube start`).
KUBERNETES_VERSION = "1.34.0"
FUNCTION_NAMESPACE = "openfaas-fn"
# Made by OpenFaaS's namespaces.yml before `kubectl apply -k k8s/` (README, step 2);
# k8s/network-policies.yaml holds policies in both.
OPENFAAS_NAMESPACES = {"openfaas", FUNCTION_NAMESPACE}
GATEWAY_ASYNC_PREFIX = "/async-function/"
WEBHOOK_ENV = "MINIO_NOTIFY_WEBHOOK_"
NOT_MANIFESTS = {"kustomization.yaml", "openfaas-values.yaml"}

Doc = dict[str, Any]


# ----------------------------------------------------------------------------- loading


def manifest_files() -> list[str]:
    """The names of k8s/*.yaml that hold Kubernetes objects: not the kustomization, nor
    the OpenFaaS chart's Helm values (tests/test_stack_yml.py checks those)."""
    return sorted(p.name for p in K8S.glob("*.yaml") if p.name not in NOT_MANIFESTS)


def load_manifests() -> list[Doc]:
    """Every Kubernetes object in k8s/*.yaml."""
    docs = []
    for name in manifest_files():
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            if doc:
                doc.setdefault("metadata", {})
                docs.append(doc)
    return docs


def load_stack() -> Doc:
    return yaml.safe_load(STACK.read_text())


def run_secret_script(tmp_path: Path) -> list[dict[str, Any]]:
    """Run k8s/create-secrets.sh with a recording stand-in for kubectl.

    Returns one entry per `kubectl create secret generic`: namespace, name and
    the literal key/value pairs it would create.
    """
    log = tmp_path / "kubectl.log"
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    # The stand-in records its arguments (one JSON line per call) and prints nothing.
    # A TLS secret's files exist only while the script runs: the stand-in logs their text.
    fake.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "if args[:3] == ['create', 'secret', 'tls']:\n"
        "    for flag in ('--cert', '--key'):\n"
        "        at = args.index(flag) + 1\n"
        "        args[at] = open(args[at]).read()\n"
        f"with open({str(log)!r}, 'a') as out:\n"
        "    out.write(json.dumps(args) + '\\n')\n"
        "if args[:1] == ['apply']:\n"
        "    sys.stdin.read()\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIO_", "FACEBLUR_"))}
    env["PATH"] = f"{fake.parent}{os.pathsep}{env['PATH']}"
    subprocess.run(
        ["bash", str(K8S / "create-secrets.sh")], env=env, check=True, capture_output=True
    )
    created = []
    for line in log.read_text().splitlines():
        args = json.loads(line)
        if args[:3] == ["create", "secret", "tls"]:
            literals = {
                "tls.crt": args[args.index("--cert") + 1],
                "tls.key": args[args.index("--key") + 1],
            }
        elif args[:3] == ["create", "secret", "generic"]:
            literals = dict(
                a.removeprefix("--from-literal=").split("=", 1)
                for a in args
                if a.startswith("--from-literal=")
            )
        else:
            continue
        created.append(
            {"name": args[3], "namespace": args[args.index("--namespace") + 1], "data": literals}
        )
    return created


@pytest.fixture(scope="module")
def manifests() -> list[Doc]:
    return load_manifests()


@pytest.fixture(scope="module")
def stack() -> Doc:
    return load_stack()


@pytest.fixture(scope="module")
def created_secrets(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_secret_script(tmp_path_factory.mktemp("secrets"))


# ----------------------------------------------------------------------------- walking


def pod_specs(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod spec) for every Deployment, StatefulSet and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def containers(spec: Doc) -> list[Doc]:
    return spec.get("initContainers", []) + spec["containers"]


def find(docs: list[Doc], kind: str, name: str, namespace: str | None) -> Doc | None:
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] == kind and meta["name"] == name and meta.get("namespace") == namespace:
            return doc
    return None


def config_maps(docs: list[Doc], namespace: str) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: d.get("data", {})
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"].get("namespace") == namespace
    }


def container_env(docs: list[Doc], workload: Doc, container: Doc) -> dict[str, str | None]:
    """The environment a container gets: envFrom ConfigMaps, then env (None = from a Secret)."""
    namespace = workload["metadata"].get("namespace")
    maps = config_maps(docs, namespace)
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps.get(source["configMapRef"]["name"], {}))
    for item in container.get("env", []):
        env[item["name"]] = item.get("value")
    return env


def secret_references(docs: list[Doc]) -> set[tuple[str, str, str]]:
    """(namespace, secret name, key) for every key a workload reads from a Secret."""
    refs = set()
    for workload, spec in pod_specs(docs):
        namespace = workload["metadata"]["namespace"]
        for container in containers(spec):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((namespace, ref["name"], ref["key"]))
        for volume in spec.get("volumes", []):
            sources = [volume] + volume.get("projected", {}).get("sources", [])
            for source in sources:
                secret = source.get("secret")
                if secret:
                    name = secret.get("secretName") or secret.get("name")
                    for item in secret.get("items", []):
                        refs.add((namespace, name, item["key"]))
    return refs


def resolve_port(container: Doc, port: int | str) -> int | None:
    """A probe's or Service's port (number or name) as a container port number."""
    for declared in container.get("ports", []):
        if port in (declared["containerPort"], declared.get("name")):
            return declared["containerPort"]
    return None


def pods_selected(docs: list[Doc], service: Doc) -> list[Doc]:
    selector = service["spec"].get("selector", {})
    namespace = service["metadata"].get("namespace")
    return [
        workload
        for workload, _ in pod_specs(docs)
        if workload["metadata"].get("namespace") == namespace
        and selector
        and selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    ]


def service_for_host(docs: list[Doc], host: str) -> tuple[Doc | None, str]:
    """The Service a cluster DNS name (name[.namespace[.svc.cluster.local]]) points at."""
    parts = host.split(".")
    name, namespace = parts[0], parts[1] if len(parts) > 1 else None
    return find(docs, "Service", name, namespace), f"{name}.{namespace}"


def job_script(docs: list[Doc]) -> str:
    job = next(d for d in docs if d["kind"] == "Job")
    return "\n".join(job["spec"]["template"]["spec"]["containers"][0]["args"])


def minio_env(docs: list[Doc]) -> dict[str, str | None]:
    minio = find(docs, "Deployment", "minio", "faceblur")
    assert minio is not None, "no MinIO Deployment in namespace faceblur"
    return container_env(docs, minio, minio["spec"]["template"]["spec"]["containers"][0])


# ----------------------------------------------------------------------------- the checks
# Each returns a list of problems; empty means consistent.


# Generic hygiene of every pod, one JSON schema checked in the same pass as the
# Kubernetes schemas: the 'restricted' Pod Security Standard the namespace enforces,
# a memory limit on every container, HTTP probes on long-running ones.
_CONTAINER = {
    "required": ["resources", "securityContext"],
    "properties": {
        "resources": {"required": ["limits"], "properties": {"limits": {"required": ["memory"]}}},
        "securityContext": {
            "required": ["allowPrivilegeEscalation", "capabilities"],
            "properties": {
                "allowPrivilegeEscalation": {"const": False},
                "capabilities": {
                    "required": ["drop"],
                    "properties": {"drop": {"contains": {"const": "ALL"}}},
                },
                "runAsUser": {"exclusiveMinimum": 0},
            },
        },
    },
}
_POD = {
    "required": ["securityContext"],
    "properties": {
        "securityContext": {
            "required": ["runAsNonRoot", "runAsUser", "seccompProfile"],
            "properties": {
                "runAsNonRoot": {"const": True},
                "runAsUser": {"exclusiveMinimum": 0},
                "seccompProfile": {
                    "properties": {"type": {"enum": ["RuntimeDefault", "Localhost"]}}
                },
            },
        },
        "containers": {"items": _CONTAINER},
    },
}
_PROBED = {
    "properties": {
        "containers": {
            "items": {
                "required": ["readinessProbe", "livenessProbe"],
                "properties": {
                    "readinessProbe": {"required": ["httpGet"]},
                    "livenessProbe": {"required": ["httpGet"]},
                },
            }
        }
    }
}


def _template(pod: Doc) -> Doc:
    return {"properties": {"spec": {"properties": {"template": {"properties": {"spec": pod}}}}}}


HYGIENE = jsonschema.Draft202012Validator(
    {
        "allOf": [
            {
                "if": {"properties": {"kind": {"enum": ["Deployment", "StatefulSet", "Job"]}}},
                "then": _template(_POD),
            },
            # A database answers no HTTP: its probes may be any kind, but it has both.
            {
                "if": {"properties": {"kind": {"const": "StatefulSet"}}},
                "then": _template(
                    {
                        "properties": {
                            "containers": {
                                "items": {"required": ["readinessProbe", "livenessProbe"]}
                            }
                        }
                    }
                ),
            },
            {"if": {"properties": {"kind": {"const": "Deployment"}}}, "then": _template(_PROBED)},
        ]
    }
)


def check_schemas(docs: list[Doc]) -> list[str]:
    """The one generic pass: each object against the Kubernetes schema, then hygiene."""
    problems = []
    for doc in docs:
        label = f"{doc.get('kind')}/{doc['metadata'].get('name')}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            problems.append(f"{label}: {getattr(e, 'message', e)}")
        for error in HYGIENE.iter_errors(doc):
            where = ".".join(str(part) for part in error.absolute_path)
            problems.append(f"{label}: {where}: {error.message}")
    return problems


def check_kustomization(kustomization: Doc, files: list[str]) -> list[str]:
    problems = []
    if kustomization.get("kind") != "Kustomization":
        problems.append("kustomization.yaml is not a Kustomization")
    listed = kustomization.get("resources", [])
    for name in files:
        if name not in listed:
            problems.append(f"{name} is not listed in kustomization.yaml")
    for name in listed:
        if name not in files:
            problems.append(f"kustomization.yaml lists {name}, which does not exist")
    return problems


def check_namespaces(docs: list[Doc]) -> list[str]:
    """Each object names its namespace, created here or by OpenFaaS's install."""
    created = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    created |= OPENFAAS_NAMESPACES
    problems = []
    for doc in docs:
        if doc["kind"] == "Namespace":
            continue
        namespace = doc["metadata"].get("namespace")
        if namespace not in created:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: namespace {namespace!r}")
    return problems


def check_config_references(docs: list[Doc]) -> list[str]:
    """ConfigMaps a pod reads exist in its namespace; FACEBLUR_* names are the code's."""
    problems = []
    for workload, spec in pod_specs(docs):
        namespace = workload["metadata"]["namespace"]
        maps = config_maps(docs, namespace)
        for container in containers(spec):
            for source in container.get("envFrom", []):
                name = source.get("configMapRef", {}).get("name")
                if name and name not in maps:
                    problems.append(f"{workload['metadata']['name']}: no ConfigMap {name}")
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("configMapKeyRef")
                if ref and ref["key"] not in maps.get(ref["name"], {}):
                    problems.append(f"{workload['metadata']['name']}: no key {ref}")
            for name in container_env(docs, workload, container):
                if name.startswith("FACEBLUR_") and name not in config.ENV_VARS:
                    problems.append(f"{name} is not a name faceblur.config reads")
    for doc in docs:
        if doc["kind"] != "ConfigMap":
            continue
        for key in doc.get("data", {}):
            if key.startswith("FACEBLUR_") and key not in config.ENV_VARS:
                problems.append(f"ConfigMap {doc['metadata']['name']}: unknown setting {key}")
    return problems


def check_secret_files(docs: list[Doc]) -> list[str]:
    """Secrets mounted as files land in SECRETS_DIR under the names faceblur.config reads."""
    problems = []
    for workload, spec in pod_specs(docs):
        # A StatefulSet's claim templates are volumes too (holding no secrets).
        claims = workload["spec"].get("volumeClaimTemplates", [])
        volumes = {c["metadata"]["name"]: {} for c in claims}
        volumes |= {v["name"]: v for v in spec.get("volumes", [])}
        for container in containers(spec):
            for mount in container.get("volumeMounts", []):
                volume = volumes.get(mount["name"])
                if volume is None:
                    problems.append(f"{workload['metadata']['name']}: no volume {mount['name']}")
                    continue
                sources = [volume] + volume.get("projected", {}).get("sources", [])
                paths = [i["path"] for s in sources for i in s.get("secret", {}).get("items", [])]
                if not paths:
                    continue
                if mount["mountPath"] != config.SECRETS_DIR:
                    problems.append(
                        f"secrets mounted at {mount['mountPath']}, read from {config.SECRETS_DIR}"
                    )
                problems += [
                    f"secret file {p} is not in config.SECRETS"
                    for p in paths
                    if p not in config.SECRETS
                ]
    return problems


def check_secrets_created(docs: list[Doc], stack: Doc, created: list[dict[str, Any]]) -> list[str]:
    """Every Secret key read (manifests, Ingress certificates and stack.yml) is made by
    create-secrets.sh, and every one it makes is read. A value the function reads in
    openfaas-fn is the one the faceblur namespace holds under the same key (database URL,
    internal token, the function's S3 key the Job creates), the page's own S3 key aside."""
    wanted = secret_references(docs)
    for function in stack["functions"].values():
        for name in function.get("secrets", []):
            # OpenFaaS mounts each key of the Secret; faceblur.config reads the file `name`.
            wanted.add((FUNCTION_NAMESPACE, name, name))
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        for tls in ingress["spec"].get("tls", []):
            for key in ("tls.crt", "tls.key"):
                wanted.add((ingress["metadata"]["namespace"], tls["secretName"], key))
    made = {(s["namespace"], s["name"], k) for s in created for k in s["data"]}
    problems = [f"nothing creates secret {n}/{s} key {k}" for n, s, k in sorted(wanted - made)]
    problems += [
        f"secret {n}/{s} key {k} is created but never read" for n, s, k in sorted(made - wanted)
    ]
    page_s3 = page_s3_secret(docs)
    function_values: dict[str, str] = {}
    for secret in created:
        for key, value in secret["data"].items():
            if not value:
                problems.append(f"secret {secret['name']} key {key} is empty")
            if secret["namespace"] == FUNCTION_NAMESPACE:
                function_values[key] = value
    for secret in created:
        if secret["namespace"] == FUNCTION_NAMESPACE or secret["name"] == page_s3:
            continue
        problems += [
            f"secret key {k} has different values in different namespaces "
            f"({secret['name']} and {FUNCTION_NAMESPACE})"
            for k, v in secret["data"].items()
            if k in function_values and v != function_values[k]
        ]
    return problems


def page_s3_secret(docs: list[Doc]) -> str | None:
    """The Secret the page's S3 access key file comes from."""
    frontend = find(docs, "Deployment", "faceblur-frontend", "faceblur")
    if frontend is None:
        return None
    for volume in frontend["spec"]["template"]["spec"].get("volumes", []):
        for source in [volume] + volume.get("projected", {}).get("sources", []):
            secret = source.get("secret", {})
            if any(i["path"] == "faceblur-s3-access-key" for i in secret.get("items", [])):
                return secret.get("secretName") or secret.get("name")
    return None


def check_services(docs: list[Doc]) -> list[str]:
    """Each Service selects a pod that declares its target port."""
    problems = []
    for service in (d for d in docs if d["kind"] == "Service"):
        name = service["metadata"]["name"]
        selected = pods_selected(docs, service)
        if not selected:
            problems.append(f"Service {name} selects no pod")
            continue
        for workload in selected:
            container_list = workload["spec"]["template"]["spec"]["containers"]
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if not any(resolve_port(c, target) for c in container_list):
                    problems.append(f"Service {name}: no container port {target}")
    return problems


def check_frontend(docs: list[Doc]) -> list[str]:
    """Container port = Service targetPort = probe port; the Service stays inside the
    cluster (the Ingress is the way in)."""
    deployment = find(docs, "Deployment", "faceblur-frontend", "faceblur")
    service = find(docs, "Service", "faceblur-frontend", "faceblur")
    if deployment is None or service is None:
        return ["frontend Deployment or Service missing"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    declared = {p["containerPort"] for p in container.get("ports", [])}
    problems = [] if declared else ["frontend declares no container port"]
    for port in service["spec"]["ports"]:
        if resolve_port(container, port["targetPort"]) not in declared:
            problems.append(f"Service targetPort {port['targetPort']} is not {declared}")
    for probe in ("readinessProbe", "livenessProbe"):
        http = container.get(probe, {}).get("httpGet", {})
        if resolve_port(container, http.get("port")) not in declared:
            problems.append(f"{probe} port {http.get('port')} is not {declared}")
        if http.get("path") != "/healthz":
            problems.append(f"{probe} path {http.get('path')} is not /healthz")
    if service["spec"].get("type", "ClusterIP") != "ClusterIP":
        problems.append(f"frontend Service is a {service['spec']['type']}, not ClusterIP")
    return problems


def check_minio_storage(docs: list[Doc]) -> list[str]:
    """MinIO keeps its objects and its undelivered events on the persistent volume."""
    minio = find(docs, "Deployment", "minio", "faceblur")
    if minio is None:
        return ["no MinIO Deployment"]
    spec = minio["spec"]["template"]["spec"]
    container = spec["containers"][0]
    claims = {v["name"] for v in spec.get("volumes", []) if "persistentVolumeClaim" in v}
    persistent = [
        m["mountPath"]
        for m in container.get("volumeMounts", [])
        if m["name"] in claims and not m.get("subPath")
    ]
    args = container.get("args", [])
    drive = args[args.index("server") + 1] if "server" in args else ""
    queues = [v for k, v in minio_env(docs).items() if k.startswith(WEBHOOK_ENV + "QUEUE_DIR_")]
    problems = []
    for what, path in [("objects", drive)] + [("event queue", q) for q in queues]:
        if not any(str(path).startswith(mount.rstrip("/") + "/") for mount in persistent):
            problems.append(f"MinIO's {what} at {path!r} are not on a persistent volume")
    if not queues:
        problems.append("MinIO has no event queue dir: events are lost while the gateway is down")
    return problems


def check_frontend_settings(docs: list[Doc], secrets_dir: Path) -> list[str]:
    """The frontend's ConfigMap and mounted secret files give settings the code accepts,
    with its own session key and the S3 key pair read from the files."""
    deployment = find(docs, "Deployment", "faceblur-frontend", "faceblur")
    if deployment is None:
        return ["frontend Deployment missing"]
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    environment = {k: v for k, v in container_env(docs, deployment, container).items() if v}
    mounted = {
        m["name"] for m in container.get("volumeMounts", []) if m["mountPath"] == config.SECRETS_DIR
    }
    files = [
        item["path"]
        for volume in spec.get("volumes", [])
        if volume["name"] in mounted
        for source in [volume] + volume.get("projected", {}).get("sources", [])
        for item in source.get("secret", {}).get("items", [])
    ]
    try:
        settings = settings_with_secret_files(environment, files, secrets_dir)
    except config.ConfigError as e:
        return [f"faceblur.config rejects the frontend's configuration: {e}"]
    problems = []
    if settings.frontend_secret_key != "value-of-faceblur-frontend-secret-key":
        problems.append("the frontend gets no faceblur-frontend-secret-key file")
    if settings.s3_access_key != "value-of-faceblur-s3-access-key":
        problems.append("the frontend's S3 access key does not come from its secret file")
    return problems


def check_frontend_image(docs: list[Doc], dockerfile: str) -> list[str]:
    """frontend/Dockerfile exposes the port the Deployment declares and runs as its user."""
    deployment = find(docs, "Deployment", "faceblur-frontend", "faceblur")
    if deployment is None:
        return ["frontend Deployment missing"]
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    declared = {p["containerPort"] for p in container.get("ports", [])}
    exposed = {int(p.split("/")[0]) for p in re.findall(r"^EXPOSE\s+(\S+)", dockerfile, re.M)}
    problems = []
    if not exposed or not exposed <= declared:
        problems.append(
            f"Dockerfile EXPOSE {sorted(exposed)} is not the container port {sorted(declared)}"
        )
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    uid = container.get("securityContext", {}).get(
        "runAsUser", spec.get("securityContext", {}).get("runAsUser")
    )
    if not users or users[-1].split(":")[0] != str(uid):
        problems.append(f"Dockerfile USER {users[-1:] or 'none'} is not runAsUser {uid}")
    return problems


def check_notification(docs: list[Doc], stack: Doc) -> list[str]:
    """MinIO's webhook targets the gateway's async route of a function stack.yml defines,
    and the Job registers the same target ID on the inbox bucket."""
    env = minio_env(docs)
    enabled = {
        k.removeprefix(WEBHOOK_ENV + "ENABLE_")
        for k, v in env.items()
        if k.startswith(WEBHOOK_ENV + "ENABLE_") and v == "on"
    }
    problems = [] if enabled else ["no MinIO webhook target is enabled"]
    setup = config_maps(docs, "faceblur").get("faceblur-bucket-setup", {})
    if setup.get("WEBHOOK_ID") not in enabled:
        problems.append(f"Job's WEBHOOK_ID {setup.get('WEBHOOK_ID')!r} is not one of {enabled}")
    settings = config_maps(docs, "faceblur").get("faceblur-config", {})
    gateway = urlsplit(settings.get("FACEBLUR_GATEWAY_URL", ""))
    for target in enabled:
        endpoint = urlsplit(env.get(WEBHOOK_ENV + "ENDPOINT_" + target) or "")
        function = endpoint.path.removeprefix(GATEWAY_ASYNC_PREFIX)
        if not endpoint.path.startswith(GATEWAY_ASYNC_PREFIX):
            problems.append(f"webhook {target} does not use the gateway's async route")
        if function not in stack["functions"]:
            problems.append(f"webhook {target} names function {function!r}, not in stack.yml")
        if (endpoint.hostname, endpoint.port) != (gateway.hostname, gateway.port):
            problems.append(
                f"webhook {target} host {endpoint.netloc} is not the gateway {gateway.netloc}"
            )
    problems += _webhook_token_problems(docs, stack, enabled)
    if settings.get("FACEBLUR_FUNCTION_NAME") not in stack["functions"]:
        problems.append("FACEBLUR_FUNCTION_NAME is not a function of stack.yml")
    script = job_script(docs)
    if "arn:minio:sqs::${WEBHOOK_ID}:webhook" not in script:
        problems.append("the Job does not register the webhook ARN of WEBHOOK_ID")
    if not re.search(
        r'mc event add "store/\$FACEBLUR_BUCKET_INBOX"[^\n]*\\\n\s*--event put', script
    ):
        problems.append("the Job does not send the inbox bucket's put events")
    return problems


def _webhook_token_problems(docs: list[Doc], stack: Doc, targets: set[str]) -> list[str]:
    """Each enabled target sends MinIO's auth token from a Secret key named as the
    function's secret that faceblur.config reads for it (check_secrets_created then
    checks both namespaces get the same value)."""
    token_secret = next(n for n, env in config.SECRETS.items() if env == "FACEBLUR_WEBHOOK_TOKEN")
    minio = find(docs, "Deployment", "minio", "faceblur")
    env = {e["name"]: e for e in minio["spec"]["template"]["spec"]["containers"][0]["env"]}
    problems = []
    for target in targets:
        item = env.get(WEBHOOK_ENV + "AUTH_TOKEN_" + target, {})
        ref = item.get("valueFrom", {}).get("secretKeyRef", {})
        if ref.get("key") != token_secret:
            problems.append(
                f"webhook {target} sends no auth token from a Secret key {token_secret!r}"
            )
    for target in targets:
        endpoint = urlsplit(env.get(WEBHOOK_ENV + "ENDPOINT_" + target, {}).get("value") or "")
        function = stack["functions"].get(endpoint.path.removeprefix(GATEWAY_ASYNC_PREFIX))
        if function is not None and token_secret not in function.get("secrets", []):
            problems.append(f"the function does not get the webhook token secret {token_secret}")
    return problems


def check_buckets(docs: list[Doc], stack: Doc) -> list[str]:
    """Bucket names agree: settings defaults, ConfigMap, stack.yml; the Job makes all three."""
    settings = config_maps(docs, "faceblur").get("faceblur-config", {})
    function_env = function_environment(stack)
    problems = []
    names = [n for n in config.ENV_VARS if n.startswith("FACEBLUR_BUCKET_")]
    for name in names:
        values = {
            "config default": config.ENV_VARS[name],
            "ConfigMap": settings.get(name),
            "stack.yml": function_env.get(name),
        }
        if len(set(values.values())) != 1:
            problems.append(f"{name} differs: {values}")
    script = job_script(docs)
    for name in names:
        if f'"${name}"' not in script:
            problems.append(f"the Job does not create the bucket ${name}")
    if "FACEBLUR_RETENTION_DAYS" not in settings:
        problems.append("the Job reads FACEBLUR_RETENTION_DAYS, which faceblur-config lacks")
    for env_name in (
        "WAIT_ATTEMPTS",
        "FUNCTION_POLICY",
        "PAGE_POLICY",
        "RETIRED_USERS",
        "WEBHOOK_ID",
    ):
        if env_name not in config_maps(docs, "faceblur").get("faceblur-bucket-setup", {}):
            problems.append(f"the Job reads {env_name}, which no ConfigMap sets")
    if '--expire-days "$FACEBLUR_RETENTION_DAYS"' not in script:
        problems.append("the Job sets no lifecycle expiry from FACEBLUR_RETENTION_DAYS")
    if not re.search(r'mc anonymous set none "store/\$bucket"', script):
        problems.append("the Job does not keep the buckets private")
    return problems


def check_shared_settings(docs: list[Doc], stack: Doc) -> list[str]:
    """A setting both the cluster ConfigMap and stack.yml give has the same value, and
    the S3 endpoint resolves to a Service port in k8s/."""
    settings = config_maps(docs, "faceblur").get("faceblur-config", {})
    function_env = function_environment(stack)
    problems = [
        f"{k}: ConfigMap {settings[k]!r} but stack.yml {function_env[k]!r}"
        for k in settings.keys() & function_env.keys()
        if settings[k] != function_env[k]
    ]
    endpoint = function_env.get("FACEBLUR_S3_ENDPOINT", "")
    host, _, port = endpoint.rpartition(":")
    service, label = service_for_host(docs, host)
    if service is None:
        problems.append(f"S3 endpoint {endpoint}: no Service {label} in k8s/")
    elif int(port or 0) not in {p["port"] for p in service["spec"]["ports"]}:
        problems.append(f"S3 endpoint {endpoint}: Service {label} has no port {port}")
    return problems


# ----------------------------------------------------------------------------- network policies

# Pods the manifests do not define, with the labels and ports their makers give them:
# the OpenFaaS chart 15.0.6 (templates/gateway-dep.yaml, queueworker-ce-dep.yaml,
# nats-dep.yaml: app=gateway :8080, app=queue-worker, app=nats :4222), faas-netes (a
# function's pods: faas_function=NAME plus stack.yml's labels, the watchdog on :8080),
# CoreDNS (k8s-app=kube-dns :53) and Minikube's ingress addon (namespace ingress-nginx).
CHART_PODS: dict[str, tuple[str, dict[str, str], set[int]]] = {
    "gateway": ("openfaas", {"app": "gateway"}, {8080}),
    "queue-worker": ("openfaas", {"app": "queue-worker"}, set()),
    "nats": ("openfaas", {"app": "nats"}, {4222}),
    "kube-dns": ("kube-system", {"k8s-app": "kube-dns"}, {53}),
    "ingress-controller": (
        "ingress-nginx",
        {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
        {80, 443},
    ),
    # Any other pod of the cluster, and an address outside it: what must stay shut out.
    "stranger": ("default", {"app": "stranger"}, {80}),
}
WATCHDOG_PORT = 8080
OUTSIDE = "outside"  # an address beyond the cluster (a callback host, 169.254.169.254)


def cluster_pods(docs: list[Doc], stack: Doc) -> dict[str, tuple[str | None, dict, set[int]]]:
    """name -> (namespace, labels, container ports) of every pod the policies may meet."""
    pods: dict[str, tuple[str | None, dict, set[int]]] = {}
    for workload, spec in pod_specs(docs):
        ports = {p["containerPort"] for c in containers(spec) for p in c.get("ports", [])}
        pods[workload["metadata"]["name"]] = (
            workload["metadata"]["namespace"],
            workload["spec"]["template"]["metadata"].get("labels", {}),
            ports,
        )
    for name, function in stack["functions"].items():
        labels = {"faas_function": name, **function.get("labels", {})}
        pods[f"function/{name}"] = (FUNCTION_NAMESPACE, labels, {WATCHDOG_PORT})
    pods.update(CHART_PODS)
    pods[OUTSIDE] = (None, {}, {80, 443})
    return pods


def selects(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against labels."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if not {
            "In": present and labels.get(key) in (values or []),
            "NotIn": not present or labels.get(key) not in (values or []),
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


def peer_matches(peer: Doc, pod: tuple[str | None, dict, set[int]], home: str) -> bool:
    """A `from`/`to` entry of a policy in namespace `home` against a pod (or OUTSIDE)."""
    namespace, labels, _ = pod
    if "ipBlock" in peer:
        return namespace is None  # only addresses outside are given by ipBlock here
    if namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
            return False
    elif namespace != home:
        return False
    return selects(peer.get("podSelector"), labels)


def rule_admits(rule: Doc, peers_key: str, pod: tuple, home: str, port: int, protocol: str):
    peers = rule.get(peers_key)
    if peers and not any(peer_matches(peer, pod, home) for peer in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(
        p.get("protocol", "TCP") == protocol and p.get("port", port) == port for p in ports
    )


def policies(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] == "NetworkPolicy"]


def allowed(docs: list[Doc], pods: dict, source: str, target: str, port: int, protocol: str):
    """Whether `source` may open `port` on `target`: its egress and the target's ingress
    (a pod no policy of a direction selects is open in that direction)."""
    for direction, own, other, peers_key in (
        ("Egress", source, target, "to"),
        ("Ingress", target, source, "from"),
    ):
        namespace, labels, _ = pods[own]
        selecting = [
            p
            for p in policies(docs)
            if p["metadata"]["namespace"] == namespace
            and direction in p["spec"].get("policyTypes", ["Ingress"])
            and selects(p["spec"].get("podSelector"), labels)
        ]
        if (
            namespace is not None
            and selecting
            and not any(
                rule_admits(rule, peers_key, pods[other], namespace, port, protocol)
                for p in selecting
                for rule in p["spec"].get(direction.lower(), [])
            )
        ):
            return False
    return True


def required_flows(docs: list[Doc], stack: Doc, pods: dict) -> list[tuple[str, str, int, str]]:
    """Connections the settings and manifests call for: (from, to, port, protocol)."""
    settings = config_maps(docs, "faceblur").get("faceblur-config", {})

    def target(host_port: str) -> tuple[str, int]:
        """A pod and container port behind a cluster DNS name:port (a Service of ours or
        the chart's gateway)."""
        host, _, port = host_port.rpartition(":")
        service, _ = service_for_host(docs, host)
        if service is None:  # the chart's gateway Service: port 8080 to its pods' 8080
            return host.split(".")[0], int(port)
        (workload,) = pods_selected(docs, service)
        (entry,) = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
        declared = workload["spec"]["template"]["spec"]["containers"]
        number = next(filter(None, (resolve_port(c, entry["targetPort"]) for c in declared)))
        return workload["metadata"]["name"], number

    s3 = target(settings["FACEBLUR_S3_ENDPOINT"])
    gateway = target(urlsplit(settings["FACEBLUR_GATEWAY_URL"]).netloc)
    postgres = target("postgres.faceblur:5432")
    webhooks = [
        target(urlsplit(v).netloc)
        for k, v in minio_env(docs).items()
        if k.startswith(WEBHOOK_ENV + "ENDPOINT_") and v
    ]
    functions = [name for name in pods if name.startswith("function/")]
    ingress_backends = [
        target(f"{b['service']['name']}.{i['metadata']['namespace']}:80")
        for i in docs
        if i["kind"] == "Ingress"
        for rule in i["spec"].get("rules", [])
        for b in (path["backend"] for path in rule["http"]["paths"])
    ]
    flows = [
        ("faceblur-frontend", *s3, "TCP"),
        ("faceblur-buckets", *s3, "TCP"),
        ("faceblur-frontend", *gateway, "TCP"),
        ("faceblur-frontend", *postgres, "TCP"),
        ("queue-worker", *gateway, "TCP"),
        ("queue-worker", "nats", 4222, "TCP"),
        *[("minio", *hook, "TCP") for hook in webhooks],
        *[("ingress-controller", *backend, "TCP") for backend in ingress_backends],
    ]
    for function in functions:
        flows += [
            (function, *s3, "TCP"),
            (function, *postgres, "TCP"),
            (function, *gateway, "TCP"),  # a split video job's segment calls
            ("gateway", function, WATCHDOG_PORT, "TCP"),
        ]
    for looker in ["faceblur-frontend", "minio", "faceblur-buckets", "queue-worker", *functions]:
        flows.append((looker, "kube-dns", 53, "UDP"))
    return flows


# Connections that must stay shut: a caller of the function or the queue worker cannot
# reach anything beyond what their work needs, and strangers reach none of our pods.
FORBIDDEN_FLOWS = [
    ("queue-worker", OUTSIDE, 80),
    ("queue-worker", OUTSIDE, 443),
    ("queue-worker", "minio", 9000),
    ("queue-worker", "postgres", 5432),
    ("queue-worker", "function/faceblur", WATCHDOG_PORT),
    ("function/faceblur", OUTSIDE, 80),
    ("function/faceblur", OUTSIDE, 443),
    ("function/faceblur", "faceblur-frontend", 5000),
    ("function/faceblur", "minio", 9001),
    ("faceblur-frontend", OUTSIDE, 443),
    ("faceblur-frontend", "function/faceblur", WATCHDOG_PORT),
    ("faceblur-frontend", "minio", 9001),
    ("faceblur-buckets", "postgres", 5432),
    ("faceblur-buckets", "gateway", 8080),
    ("faceblur-buckets", OUTSIDE, 443),
    ("minio", "postgres", 5432),
    ("minio", OUTSIDE, 443),
    ("postgres", "minio", 9000),
    ("postgres", OUTSIDE, 443),
    ("stranger", "minio", 9000),
    ("stranger", "minio", 9001),
    ("stranger", "postgres", 5432),
    ("stranger", "faceblur-frontend", 5000),
    ("stranger", "function/faceblur", WATCHDOG_PORT),
    ("ingress-controller", "minio", 9000),
    ("ingress-controller", "postgres", 5432),
    (OUTSIDE, "faceblur-frontend", 5000),
    (OUTSIDE, "minio", 9000),
]


def check_network_selectors(docs: list[Doc], stack: Doc) -> list[str]:
    """Each policy selects real pods, each peer names real pods, each port is one they
    declare; every namespace we own denies by default."""
    pods = {n: p for n, p in cluster_pods(docs, stack).items() if n not in ("stranger", OUTSIDE)}
    problems = []
    for policy in policies(docs):
        name, home = policy["metadata"]["name"], policy["metadata"]["namespace"]
        spec = policy["spec"]
        own = [
            n
            for n, (ns, labels, _) in pods.items()
            if ns == home and selects(spec.get("podSelector"), labels)
        ]
        if not own:
            problems.append(f"NetworkPolicy {home}/{name} selects no pod")
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction, []):
                peers = [
                    n
                    for n, pod in pods.items()
                    if any(peer_matches(peer, pod, home) for peer in rule.get(peers_key, []))
                ]
                if rule.get(peers_key) and not peers:
                    problems.append(f"NetworkPolicy {home}/{name}: a {direction} peer is no pod")
                # Egress ports are the peers' ports; ingress ports the policy's own pods'.
                holders = peers if direction == "egress" else own
                for entry in rule.get("ports", []):
                    port = entry.get("port")
                    if not isinstance(port, int):
                        problems.append(f"NetworkPolicy {home}/{name}: port {port!r} by number")
                    elif holders and not any(port in pods[h][2] for h in holders):
                        problems.append(
                            f"NetworkPolicy {home}/{name}: {direction} port {port} is not a "
                            f"port of {sorted(holders)}"
                        )
    owned = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    for namespace in sorted(owned | {FUNCTION_NAMESPACE}):
        if not any(
            p["metadata"]["namespace"] == namespace
            and p["spec"].get("podSelector") in ({}, None)
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
            for p in policies(docs)
        ):
            problems.append(f"namespace {namespace} has no default-deny NetworkPolicy")
    return problems


def check_network_flows(docs: list[Doc], stack: Doc) -> list[str]:
    """The connections the settings call for pass the policies; the forbidden ones do not."""
    pods = cluster_pods(docs, stack)
    problems = [
        f"{source} cannot reach {target}:{port}/{protocol}"
        for source, target, port, protocol in required_flows(docs, stack, pods)
        if not allowed(docs, pods, source, target, port, protocol)
    ]
    problems += [
        f"{source} can reach {target}:{port}"
        for source, target, port in FORBIDDEN_FLOWS
        if allowed(docs, pods, source, target, port, "TCP")
    ]
    return problems


# ----------------------------------------------------------------------------- the Ingress


def check_ingress(docs: list[Doc]) -> list[str]:
    """The page's Ingress: TLS for its host, to the frontend Service's port, sized for one
    photo and patient enough for one call; MinIO's CORS lets that origin upload."""
    from frontend.app import FORM_OVERHEAD_BYTES
    from frontend.gateway import READ_TIMEOUT_SECONDS

    ingresses = [d for d in docs if d["kind"] == "Ingress"]
    if len(ingresses) != 1:
        return [f"expected one Ingress, found {len(ingresses)}"]
    (ingress,) = ingresses
    spec, notes = ingress["spec"], ingress["metadata"].get("annotations", {})
    hosts = {rule.get("host") for rule in spec.get("rules", [])}
    tls_hosts = {h for tls in spec.get("tls", []) for h in tls.get("hosts", [])}
    problems = [] if hosts and hosts <= tls_hosts else [f"hosts {hosts} not all under TLS"]
    if notes.get("nginx.ingress.kubernetes.io/force-ssl-redirect") != "true":
        problems.append("plain HTTP is not redirected to HTTPS")
    service = find(docs, "Service", "faceblur-frontend", ingress["metadata"]["namespace"])
    for rule in spec.get("rules", []):
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            port = backend["port"].get("name") or backend["port"].get("number")
            if backend["name"] != "faceblur-frontend" or service is None:
                problems.append(f"the Ingress sends {rule.get('host')} to {backend['name']}")
            elif port not in {p.get("name") for p in service["spec"]["ports"]} | {
                p["port"] for p in service["spec"]["ports"]
            }:
                problems.append(f"the frontend Service has no port {port}")
    body = notes.get("nginx.ingress.kubernetes.io/proxy-body-size", "1m")
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    size = int(body[:-1]) * units[body[-1].lower()] if body[-1].isalpha() else int(body)
    photo = int(config_maps(docs, "faceblur")["faceblur-config"]["FACEBLUR_MAX_BYTES"])
    if size < photo + FORM_OVERHEAD_BYTES:
        problems.append(f"proxy-body-size {body} is below one photo's upload")
    read = int(notes.get("nginx.ingress.kubernetes.io/proxy-read-timeout", "60"))
    if read <= READ_TIMEOUT_SECONDS:
        problems.append(f"proxy-read-timeout {read}s does not outlast the page's wait")
    origins = (minio_env(docs).get("MINIO_API_CORS_ALLOW_ORIGIN") or "").split(",")
    problems += [
        f"MinIO's CORS does not allow the page's origin https://{h}"
        for h in sorted(filter(None, hosts))
        if f"https://{h}" not in origins
    ]
    return problems


def check_s3_keys(docs: list[Doc], created: list[dict[str, Any]]) -> list[str]:
    """The page and the function each have their own S3 key: the page reads its pair from
    a Secret the function never gets; the Job makes a user from each pair."""
    secrets = {(s["namespace"], s["name"]): s["data"] for s in created}
    page = secrets.get(("faceblur", page_s3_secret(docs) or ""), {})
    function = {
        key: secrets.get((FUNCTION_NAMESPACE, key), {}).get(key)
        for key in ("faceblur-s3-access-key", "faceblur-s3-secret-key")
    }
    problems = [] if page else ["the page mounts no S3 key pair the script creates"]
    for key, value in function.items():
        if not value:
            problems.append(f"the function gets no {key}")
        elif page.get(key) == value:
            problems.append(f"the page and the function share {key}")
    job = next(d for d in docs if d["kind"] == "Job")
    env_refs = {
        item["name"]: (
            item["valueFrom"]["secretKeyRef"]["name"],
            item["valueFrom"]["secretKeyRef"]["key"],
        )
        for item in job["spec"]["template"]["spec"]["containers"][0].get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    for who, pair in (("PAGE", page), ("FUNCTION", function)):
        for part in ("ACCESS", "SECRET"):
            ref = env_refs.get(f"{who}_{part}_KEY")
            value = secrets.get(("faceblur", ref[0]), {}).get(ref[1]) if ref else None
            if value is None or value != pair.get(f"faceblur-s3-{part.lower()}-key"):
                problems.append(f"the Job's {who}_{part}_KEY is not the {who.lower()}'s key")
    return problems


# ----------------------------------------------------------------------------- tests


def test_schemas_ship_offline_with_the_pinned_version() -> None:
    assert KUBERNETES_VERSION.rsplit(".", 1)[0] in {
        v.rsplit(".", 1)[0] for v in kubernetes_validate.utils.all_versions()
    }


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("schema validation tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_every_manifest_validates_against_the_kubernetes_schemas(
    manifests: list[Doc], no_network: None
) -> None:
    assert manifests
    assert check_schemas(manifests) == []


def test_settings_files_are_written_from_faceblur_config() -> None:
    """k8s/settings.yaml and the function's environment_file hold config.py's values."""
    for path, text in generated_files().items():
        assert path.read_text() == text, f"{path.name} is out of date: run `make settings`"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = manifest_files()
    assert check_kustomization(kustomization, files) == []


def test_no_secret_values_in_the_manifests(manifests: list[Doc]) -> None:
    # Secrets are made by create-secrets.sh from the environment, never stored here.
    assert [d["metadata"]["name"] for d in manifests if d["kind"] == "Secret"] == []


def test_secret_script_generates_values_when_none_are_given(
    created_secrets: list[dict[str, Any]],
) -> None:
    values = [v for s in created_secrets for v in s["data"].values()]
    assert values and all(values)
    keys = {k for s in created_secrets for k in s["data"]}
    # Random values, long enough for MinIO (at least 8 characters).
    assert all(
        len(s["data"][k]) >= 8
        for s in created_secrets
        for k in s["data"]
        if k.endswith(("secret-key", "password"))
    )
    assert keys >= set(config.SECRETS)


CHECKS: dict[str, Callable[..., list[str]]] = {
    "ingress": check_ingress,
    "namespaces": check_namespaces,
    "config references": check_config_references,
    "secret files": check_secret_files,
    "services": check_services,
    "frontend ports": check_frontend,
    "MinIO storage": check_minio_storage,
}
STACK_CHECKS: dict[str, Callable[..., list[str]]] = {
    "notification": check_notification,
    "buckets": check_buckets,
    "shared settings": check_shared_settings,
    "network selectors": check_network_selectors,
    "network flows": check_network_flows,
}


@pytest.mark.parametrize("name", CHECKS)
def test_manifests_are_consistent(name: str, manifests: list[Doc]) -> None:
    assert CHECKS[name](manifests) == []


@pytest.mark.parametrize("name", STACK_CHECKS)
def test_manifests_agree_with_stack_yml(name: str, manifests: list[Doc], stack: Doc) -> None:
    assert STACK_CHECKS[name](manifests, stack) == []


def test_frontend_configuration_loads_as_the_code_reads_it(
    manifests: list[Doc], tmp_path: Path
) -> None:
    assert check_frontend_settings(manifests, tmp_path) == []
    without_key = copy.deepcopy(manifests)
    volume = next(
        v for v in _pod(without_key, "faceblur-frontend")["volumes"] if v["name"] == "secrets"
    )
    volume["projected"]["sources"].pop()  # the faceblur-frontend Secret
    assert "faceblur-frontend-secret-key" in " ".join(
        check_frontend_settings(without_key, tmp_path)
    )
    bad_value = copy.deepcopy(manifests)
    _config(bad_value)["FACEBLUR_S3_SECURE"] = "maybe"
    assert "FACEBLUR_S3_SECURE" in " ".join(check_frontend_settings(bad_value, tmp_path))


def test_frontend_image_matches_its_deployment(manifests: list[Doc]) -> None:
    dockerfile = ROOT / "frontend" / "Dockerfile"
    assert dockerfile.is_file(), "frontend/Dockerfile is missing"
    assert check_frontend_image(manifests, dockerfile.read_text()) == []


def test_image_checks_catch_drift(manifests: list[Doc]) -> None:
    good = "FROM python:3.11-slim\nUSER 10001\nEXPOSE 5000\n"
    assert check_frontend_image(manifests, good) == []
    assert "EXPOSE" in " ".join(check_frontend_image(manifests, good.replace("5000", "8000")))
    assert "USER" in " ".join(check_frontend_image(manifests, good.replace("10001", "app")))


def test_every_secret_read_is_created_and_shared(
    manifests: list[Doc], stack: Doc, created_secrets: list[dict[str, Any]]
) -> None:
    assert check_secrets_created(manifests, stack, created_secrets) == []


# ----------------------------------------------------------------------------- the Job's script

FAKE_MC = """#!/usr/bin/env python3
# Stand-in for MinIO's mc: records each call; `admin info` fails the first
# MC_INFO_FAILURES times (MinIO still starting); `admin policy attach` fails as mc
# does when MC_ALREADY_ATTACHED is set (a second run of the Job).
import json, os, sys
args = sys.argv[1:]
if args[:1] == ["--config-dir"]:
    args = args[2:]
record = {"args": args}
if args[:3] == ["admin", "policy", "create"]:
    record["policy"] = json.load(open(args[-1]))
with open(os.environ["MC_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
if args[:2] == ["admin", "info"]:
    counter = os.environ["MC_LOG"] + ".info"
    seen = int(open(counter).read()) if os.path.exists(counter) else 0
    open(counter, "w").write(str(seen + 1))
    if seen < int(os.environ.get("MC_INFO_FAILURES", "0")):
        sys.exit(1)
if args[:3] == ["admin", "policy", "attach"] and os.environ.get("MC_ALREADY_ATTACHED"):
    print("mc: <ERROR> policy change is already in effect", file=sys.stderr)
    sys.exit(1)
"""


def run_job_script(
    docs: list[Doc], tmp_path: Path, **overrides: str
) -> tuple[subprocess.CompletedProcess, list[dict[str, Any]]]:
    """Run the Job's script with its real environment (ConfigMaps resolved, secrets
    given placeholder values) against a recording stand-in for `mc`."""
    job = next(d for d in docs if d["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {
        k: v if v is not None else f"placeholder-{k.lower()}"
        for k, v in container_env(docs, job, container).items()
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in {"mc": FAKE_MC, "sleep": '#!/bin/sh\necho sleep >> "$MC_LOG"\n'}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "mc.log"
    log.unlink(missing_ok=True)
    Path(f"{log}.info").unlink(missing_ok=True)
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "MC_LOG": str(log),
        "TMPDIR": str(tmp_path),
        **overrides,
    }
    command = container["command"] + [container["args"][0]]
    assert command[:2] == ["/bin/sh", "-c"]
    done = subprocess.run(["sh", *command[1:]], env=env, capture_output=True, text=True, timeout=60)
    lines = log.read_text().splitlines() if log.exists() else []
    return done, [json.loads(line) if line != "sleep" else {"args": ["sleep"]} for line in lines]


def test_bucket_job_waits_for_minio_then_sets_everything_up(
    manifests: list[Doc], tmp_path: Path
) -> None:
    done, calls = run_job_script(manifests, tmp_path, MC_INFO_FAILURES="2")
    assert done.returncode == 0, done.stderr
    args = [c["args"] for c in calls]
    settings = config_maps(manifests, "faceblur")["faceblur-config"]
    setup = config_maps(manifests, "faceblur")["faceblur-bucket-setup"]
    buckets = [settings[f"FACEBLUR_BUCKET_{b}"] for b in ("INBOX", "ORIGINALS", "RESULTS")]
    # Two failed probes of MinIO, two pauses, then the work.
    assert [a[:2] for a in args].count(["admin", "info"]) == 3
    assert args.count(["sleep"]) == 2
    first_bucket_call = args.index(["mb", "--ignore-existing", f"store/{buckets[0]}"])
    assert first_bucket_call > max(i for i, a in enumerate(args) if a == ["sleep"])
    for bucket in buckets:
        assert ["mb", "--ignore-existing", f"store/{bucket}"] in args
        assert ["anonymous", "set", "none", f"store/{bucket}"] in args
        assert [
            "ilm",
            "rule",
            "add",
            "--expire-days",
            settings["FACEBLUR_RETENTION_DAYS"],
            f"store/{bucket}",
        ] in args
    # One user per S3 key pair, each with its own policy attached.
    created_policies = {c["args"][4]: c["policy"] for c in calls if "policy" in c}
    assert set(created_policies) == {setup["FUNCTION_POLICY"], setup["PAGE_POLICY"]}
    for who in ("function", "page"):
        access, secret = f"placeholder-{who}_access_key", f"placeholder-{who}_secret_key"
        assert ["admin", "user", "add", "store", access, secret] in args
        policy = setup[f"{who.upper()}_POLICY"]
        assert ["admin", "policy", "attach", "store", policy, "--user", access] in args
    # The key the two once shared is removed (it had every right on every bucket).
    assert [a for a in args if a[:3] == ["admin", "user", "rm"]] == [
        ["admin", "user", "rm", "store", retired] for retired in setup["RETIRED_USERS"].split()
    ]
    for policy in created_policies.values():
        resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
        assert resources <= {f"arn:aws:s3:::{b}" for b in buckets} | {
            f"arn:aws:s3:::{b}/*" for b in buckets
        }
    assert [
        "event",
        "add",
        f"store/{buckets[0]}",
        f"arn:minio:sqs::{setup['WEBHOOK_ID']}:webhook",
        "--event",
        "put",
        "--ignore-existing",
    ] in args
    # Only the inbox notifies: results never trigger the function again.
    assert [a for a in args if a[:2] == ["event", "add"]] == [
        [
            "event",
            "add",
            f"store/{buckets[0]}",
            f"arn:minio:sqs::{setup['WEBHOOK_ID']}:webhook",
            "--event",
            "put",
            "--ignore-existing",
        ]
    ]


def policy_allows(policy: Doc, action: str, resource: str) -> bool:
    """IAM-style: some Allow statement names the action and matches the resource
    (`*` in a resource matches anything; the policies deny nothing explicitly)."""
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])
    return any(
        action in statement["Action"]
        and any(fnmatch.fnmatchcase(resource, pattern) for pattern in statement["Resource"])
        for statement in policy["Statement"]
    )


def test_the_page_and_the_function_get_only_what_their_work_needs(
    manifests: list[Doc], tmp_path: Path
) -> None:
    """The policies the Job creates, asked the questions that matter: the page never reads
    an original (faces in the clear, or sealed), nor writes a result or an original."""
    done, calls = run_job_script(manifests, tmp_path)
    assert done.returncode == 0, done.stderr
    setup = config_maps(manifests, "faceblur")["faceblur-bucket-setup"]
    settings = config_maps(manifests, "faceblur")["faceblur-config"]
    inbox, originals, results = (
        settings[f"FACEBLUR_BUCKET_{b}"] for b in ("INBOX", "ORIGINALS", "RESULTS")
    )
    made = {c["args"][4]: c["policy"] for c in calls if "policy" in c}
    page, function = made[setup["PAGE_POLICY"]], made[setup["FUNCTION_POLICY"]]
    obj = "arn:aws:s3:::{}/someone/photo.jpg".format
    expected = {
        # (action, resource): (page, function)
        ("s3:GetObject", obj(results)): (True, True),
        ("s3:GetObject", obj(originals)): (False, True),
        ("s3:GetObject", obj(inbox)): (False, True),
        ("s3:PutObject", obj(inbox)): (True, True),
        ("s3:PutObject", obj(results)): (False, True),
        ("s3:PutObject", obj(originals)): (False, True),
        ("s3:DeleteObject", obj(results)): (True, True),
        ("s3:DeleteObject", obj(originals)): (True, True),
        ("s3:DeleteObject", obj(inbox)): (True, True),
        ("s3:ListBucket", f"arn:aws:s3:::{results}"): (True, True),
        ("s3:GetObject", "arn:aws:s3:::audit/x.json"): (False, False),
        ("s3:PutBucketPolicy", f"arn:aws:s3:::{results}"): (False, False),
        ("s3:ListAllMyBuckets", "arn:aws:s3:::*"): (False, False),
        ("admin:CreateUser", "arn:minio:admin:::*"): (False, False),
    }
    for (action, resource), (page_may, function_may) in expected.items():
        assert policy_allows(page, action, resource) is page_may, (action, resource)
        assert policy_allows(function, action, resource) is function_may, (action, resource)


def test_bucket_job_keeps_a_retired_name_given_again(manifests: list[Doc], tmp_path: Path) -> None:
    retired = config_maps(manifests, "faceblur")["faceblur-bucket-setup"]["RETIRED_USERS"]
    done, calls = run_job_script(manifests, tmp_path, PAGE_ACCESS_KEY=retired.split()[0])
    assert done.returncode == 0, done.stderr
    assert not [c for c in calls if c["args"][:3] == ["admin", "user", "rm"]]


def test_bucket_job_runs_again_without_error(manifests: list[Doc], tmp_path: Path) -> None:
    done, _ = run_job_script(manifests, tmp_path, MC_ALREADY_ATTACHED="1")
    assert done.returncode == 0, done.stderr


def test_bucket_job_gives_up_when_minio_never_answers(manifests: list[Doc], tmp_path: Path) -> None:
    done, calls = run_job_script(manifests, tmp_path, MC_INFO_FAILURES="99", WAIT_ATTEMPTS="3")
    assert done.returncode == 1
    args = [c["args"] for c in calls]
    assert args.count(["admin", "info", "store"]) == 3  # WAIT_ATTEMPTS, then it gives up
    assert args.count(["sleep"]) == 2
    assert not [a for a in args if a[:1] == ["mb"]]


# ----------------------------------------------------------------------------- the checks can fail


def _pod(docs: list[Doc], name: str) -> Doc:
    return next(spec for w, spec in pod_specs(docs) if w["metadata"]["name"] == name)


def _container(docs: list[Doc], name: str) -> Doc:
    return _pod(docs, name)["containers"][0]


def _config(docs: list[Doc], name: str = "faceblur-config") -> dict[str, str]:
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)[
        "data"
    ]


def _service(docs: list[Doc], name: str) -> Doc:
    return next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name)


def _minio_env(docs: list[Doc], name: str) -> Doc:
    return next(e for e in _container(docs, "minio")["env"] if e["name"] == name)


def _rename_env(docs: list[Doc], old: str, new: str) -> None:
    _minio_env(docs, old)["name"] = new


def _policy(docs: list[Doc], namespace: str, name: str) -> Doc:
    return next(
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and (d["metadata"]["namespace"], d["metadata"]["name"]) == (namespace, name)
    )


def _ingress(docs: list[Doc]) -> Doc:
    return next(d for d in docs if d["kind"] == "Ingress")


def _drop_egress_to(docs: list[Doc], namespace: str, name: str, port: int) -> None:
    spec = _policy(docs, namespace, name)["spec"]
    spec["egress"] = [r for r in spec["egress"] if port not in [p["port"] for p in r["ports"]]]


# name -> (the check that must catch it, how to break a copy, a word the problem names)
BREAKAGES: dict[str, tuple[str, Callable[[list[Doc], Doc], None], str]] = {
    "misspelt field": (
        "schemas",
        lambda d, s: _container(d, "minio").__setitem__("imagePullPolice", "Always"),
        "imagePullPolice",
    ),
    "port as text": (
        "schemas",
        lambda d, s: _service(d, "minio")["spec"]["ports"][0].__setitem__("port", "nine"),
        "nine",
    ),
    "foreign namespace": (
        "namespaces",
        lambda d, s: _service(d, "minio")["metadata"].__setitem__("namespace", "default"),
        "default",
    ),
    "missing ConfigMap": (
        "config references",
        lambda d, s: _container(d, "faceblur-frontend")["envFrom"][0]["configMapRef"].update(
            name="faceblur-settings"
        ),
        "faceblur-settings",
    ),
    "setting the code never reads": (
        "config references",
        lambda d, s: _config(d).__setitem__("FACEBLUR_S3_BUCKET", "inbox"),
        "FACEBLUR_S3_BUCKET",
    ),
    "secret file under another name": (
        "secret files",
        lambda d, s: next(
            v for v in _pod(d, "faceblur-frontend")["volumes"] if v["name"] == "secrets"
        )["projected"]["sources"][0]["secret"]["items"][0].update(path="s3-access-key"),
        "s3-access-key",
    ),
    "secrets mounted elsewhere": (
        "secret files",
        lambda d, s: next(
            m for m in _container(d, "faceblur-frontend")["volumeMounts"] if m["name"] == "secrets"
        ).update(mountPath="/etc/secrets"),
        "/etc/secrets",
    ),
    "Service selects nothing": (
        "services",
        lambda d, s: _service(d, "minio-console")["spec"]["selector"].update(
            {"app.kubernetes.io/name": "minio-console"}
        ),
        "selects no pod",
    ),
    "Service targets an undeclared port": (
        "services",
        lambda d, s: _service(d, "minio")["spec"]["ports"][0].update(targetPort="api"),
        "api",
    ),
    "no liveness probe": (
        "schemas",
        lambda d, s: _container(d, "minio").pop("livenessProbe"),
        "'livenessProbe' is a required property",
    ),
    "no memory limit": (
        "schemas",
        lambda d, s: _container(d, "faceblur-buckets")["resources"]["limits"].pop("memory"),
        "'memory' is a required property",
    ),
    "root allowed": (
        "schemas",
        lambda d, s: _pod(d, "faceblur-frontend")["securityContext"].update(runAsUser=0),
        "runAsUser",
    ),
    "privilege escalation": (
        "schemas",
        lambda d, s: _container(d, "minio")["securityContext"].update(
            allowPrivilegeEscalation=True
        ),
        "allowPrivilegeEscalation",
    ),
    "capabilities kept": (
        "schemas",
        lambda d, s: _container(d, "faceblur-frontend")["securityContext"].pop("capabilities"),
        "capabilities",
    ),
    "no seccomp profile": (
        "schemas",
        lambda d, s: _pod(d, "minio")["securityContext"].pop("seccompProfile"),
        "seccompProfile",
    ),
    "frontend port drift": (
        "frontend ports",
        lambda d, s: _container(d, "faceblur-frontend")["ports"][0].update(containerPort=8000),
        "5000",
    ),
    "frontend probe path": (
        "frontend ports",
        lambda d, s: _container(d, "faceblur-frontend")["readinessProbe"]["httpGet"].update(
            path="/health"
        ),
        "/health",
    ),
    "objects in the container": (
        "MinIO storage",
        lambda d, s: _container(d, "minio")["args"].__setitem__(1, "/export"),
        "/export",
    ),
    "event queue lost on restart": (
        "MinIO storage",
        lambda d, s: _minio_env(d, "MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_FACEBLUR").update(
            value="/tmp/events"
        ),
        "event queue",
    ),
    "webhook to another function": (
        "notification",
        lambda d, s: _minio_env(d, "MINIO_NOTIFY_WEBHOOK_ENDPOINT_FACEBLUR").update(
            value="http://gateway.openfaas.svc.cluster.local:8080/async-function/face-blur"
        ),
        "face-blur",
    ),
    "webhook to the sync route": (
        "notification",
        lambda d, s: _minio_env(d, "MINIO_NOTIFY_WEBHOOK_ENDPOINT_FACEBLUR").update(
            value="http://gateway.openfaas.svc.cluster.local:8080/function/faceblur"
        ),
        "async",
    ),
    "webhook ID drift": (
        "notification",
        lambda d, s: _rename_env(
            d, "MINIO_NOTIFY_WEBHOOK_ENABLE_FACEBLUR", "MINIO_NOTIFY_WEBHOOK_ENABLE_PRIMARY"
        ),
        "WEBHOOK_ID",
    ),
    "webhook without its token": (
        "notification",
        lambda d, s: _container(d, "minio")["env"].remove(
            _minio_env(d, "MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_FACEBLUR")
        ),
        "auth token",
    ),
    "webhook token as a plain value": (
        "notification",
        lambda d, s: _minio_env(d, "MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_FACEBLUR").update(
            value="token", valueFrom={}
        ),
        "auth token",
    ),
    "function without the webhook token": (
        "notification",
        lambda d, s: s["functions"]["faceblur"]["secrets"].remove("faceblur-webhook-token"),
        "webhook token secret",
    ),
    "function renamed in stack.yml": (
        "notification",
        lambda d, s: s["functions"].__setitem__("blur", s["functions"].pop("faceblur")),
        "faceblur",
    ),
    "bucket renamed in the ConfigMap": (
        "buckets",
        lambda d, s: _config(d).update(FACEBLUR_BUCKET_RESULTS="output"),
        "output",
    ),
    "bucket renamed in stack.yml": (
        "buckets",
        lambda d, s: s["functions"]["faceblur"]["environment"].update(
            FACEBLUR_BUCKET_INBOX="uploads"
        ),
        "uploads",
    ),
    "retention unset": (
        "buckets",
        lambda d, s: _config(d).pop("FACEBLUR_RETENTION_DAYS"),
        "FACEBLUR_RETENTION_DAYS",
    ),
    "S3 endpoint drift": (
        "shared settings",
        lambda d, s: s["functions"]["faceblur"]["environment"].update(
            FACEBLUR_S3_ENDPOINT="minio.storage.svc.cluster.local:9000"
        ),
        "minio.storage",
    ),
    "Ingress body limit": (
        "ingress",
        lambda d, s: _ingress(d)["metadata"]["annotations"].pop(
            "nginx.ingress.kubernetes.io/proxy-body-size"
        ),
        "proxy-body-size",
    ),
    "Ingress host without TLS": (
        "ingress",
        lambda d, s: _ingress(d)["spec"]["rules"][0].update(host="faceblur.example.org"),
        "TLS",
    ),
    "Ingress to another Service": (
        "ingress",
        lambda d, s: _ingress(d)["spec"]["rules"][0]["http"]["paths"][0]["backend"][
            "service"
        ].update(name="frontend"),
        "frontend",
    ),
    "page origin missing from MinIO's CORS": (
        "ingress",
        lambda d, s: _minio_env(d, "MINIO_API_CORS_ALLOW_ORIGIN").update(
            value="http://127.0.0.1:5000"
        ),
        "https://faceblur.test",
    ),
    "policy label typo": (
        "network selectors",
        lambda d, s: _policy(d, "faceblur", "postgres")["spec"]["podSelector"].update(
            matchLabels={"app.kubernetes.io/name": "postgresql"}
        ),
        "selects no pod",
    ),
    "function label drift": (
        "network selectors",
        lambda d, s: s["functions"].__setitem__("blur", s["functions"].pop("faceblur")),
        "selects no pod",
    ),
    "egress to a port nobody serves": (
        "network selectors",
        lambda d, s: _policy(d, "faceblur", "faceblur-buckets")["spec"]["egress"][0]["ports"][
            0
        ].update(port=9090),
        "9090",
    ),
    "no default deny for the function": (
        "network selectors",
        lambda d, s: d.remove(_policy(d, FUNCTION_NAMESPACE, "default-deny")),
        "default-deny",
    ),
    "function cannot dispatch video segments": (
        "network flows",
        lambda d, s: _drop_egress_to(d, FUNCTION_NAMESPACE, "faceblur", 8080),
        "function/faceblur cannot reach gateway:8080",
    ),
    "page cut off from the database": (
        "network flows",
        lambda d, s: _drop_egress_to(d, "faceblur", "faceblur-frontend", 5432),
        "faceblur-frontend cannot reach postgres:5432",
    ),
    "function cut off from MinIO": (
        "network flows",
        lambda d, s: _drop_egress_to(d, FUNCTION_NAMESPACE, "faceblur", 9000),
        "function/faceblur cannot reach minio:9000",
    ),
    "queue worker may post anywhere": (
        "network flows",
        lambda d, s: _policy(d, "openfaas", "queue-worker")["spec"]["egress"].append({}),
        "queue-worker can reach outside",
    ),
    "function open to any pod": (
        "network flows",
        lambda d, s: _policy(d, FUNCTION_NAMESPACE, "faceblur")["spec"]["ingress"][0].pop("from"),
        "stranger can reach function/faceblur",
    ),
    "webhook to a gateway port the policy shuts": (
        "network flows",
        lambda d, s: _drop_egress_to(d, "faceblur", "minio", 8080),
        "minio cannot reach gateway:8080",
    ),
    "S3 port drift": (
        "shared settings",
        lambda d, s: (
            _config(d).update(FACEBLUR_S3_ENDPOINT="minio.faceblur.svc.cluster.local:9002"),
            s["functions"]["faceblur"]["environment"].update(
                FACEBLUR_S3_ENDPOINT="minio.faceblur.svc.cluster.local:9002"
            ),
        ),
        "9002",
    ),
}


def _run_check(name: str, docs: list[Doc], stack: Doc) -> list[str]:
    if name == "schemas":
        return check_schemas(docs)
    if name in STACK_CHECKS:
        return STACK_CHECKS[name](docs, stack)
    return CHECKS[name](docs)


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_each_check_catches_a_broken_copy(breakage: str, manifests: list[Doc], stack: Doc) -> None:
    check, breaks, word = BREAKAGES[breakage]
    docs, broken_stack = copy.deepcopy(manifests), copy.deepcopy(stack)
    assert _run_check(check, docs, broken_stack) == []  # sound before
    breaks(docs, broken_stack)
    problems = _run_check(check, docs, broken_stack)
    assert problems, f"{check} missed: {breakage}"
    assert word in " ".join(problems)


def test_every_check_has_a_breakage() -> None:
    assert {check for check, _, _ in BREAKAGES.values()} == {"schemas", *CHECKS, *STACK_CHECKS}


def test_kustomization_check_catches_an_unlisted_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = manifest_files()
    assert check_kustomization(kustomization, [*files, "extra.yaml"]) == [
        "extra.yaml is not listed in kustomization.yaml"
    ]
    kustomization["resources"].append("gone.yaml")
    assert "gone.yaml" in " ".join(check_kustomization(kustomization, files))


def test_secret_check_catches_drift(
    manifests: list[Doc], stack: Doc, created_secrets: list[dict[str, Any]]
) -> None:
    renamed = copy.deepcopy(stack)
    renamed["functions"]["faceblur"]["secrets"].append("faceblur-s3-token")
    assert "faceblur-s3-token" in " ".join(
        check_secrets_created(manifests, renamed, created_secrets)
    )

    mismatched = copy.deepcopy(created_secrets)
    function_copy = next(s for s in mismatched if s["namespace"] == FUNCTION_NAMESPACE)
    key = next(iter(function_copy["data"]))
    function_copy["data"][key] = "another-value"
    assert "different values" in " ".join(check_secrets_created(manifests, stack, mismatched))

    orphan = [
        *copy.deepcopy(created_secrets),
        {"namespace": "faceblur", "name": "unused", "data": {"k": "v"}},
    ]
    assert "never read" in " ".join(check_secrets_created(manifests, stack, orphan))


def test_minio_lets_the_page_upload_videos_from_its_address(manifests: list[Doc]) -> None:
    """The page PUTs videos straight into the inbox from its own origin: the page reached
    on loopback at its own port (the frontend container's, which the port-forward and
    `make run` keep) must be an origin MinIO's CORS allows, under both loopback names."""
    origins = _minio_env(manifests, "MINIO_API_CORS_ALLOW_ORIGIN")["value"].split(",")
    (port,) = [p["containerPort"] for p in _container(manifests, "faceblur-frontend")["ports"]]
    assert {f"http://127.0.0.1:{port}", f"http://localhost:{port}"} <= set(origins)
    assert all(urlsplit(o).scheme in ("http", "https") and not urlsplit(o).path for o in origins)


def test_the_page_and_the_function_have_separate_s3_keys(
    manifests: list[Doc], created_secrets: list[dict[str, Any]]
) -> None:
    assert check_s3_keys(manifests, created_secrets) == []
    shared = copy.deepcopy(created_secrets)
    page = next(s for s in shared if s["name"] == page_s3_secret(manifests))
    for secret in shared:
        if secret["namespace"] == FUNCTION_NAMESPACE and secret["name"].startswith("faceblur-s3"):
            secret["data"] = {k: page["data"][k] for k in secret["data"]}
    assert "share faceblur-s3-access-key" in " ".join(check_s3_keys(manifests, shared))
    swapped = copy.deepcopy(manifests)
    job_env = _container(swapped, "faceblur-buckets")["env"]
    next(e for e in job_env if e["name"] == "PAGE_ACCESS_KEY")["valueFrom"]["secretKeyRef"][
        "name"
    ] = "faceblur-function-s3"
    assert "PAGE_ACCESS_KEY" in " ".join(check_s3_keys(swapped, created_secrets))


def test_the_page_mounts_its_own_key_and_never_the_functions(manifests: list[Doc]) -> None:
    mounted = {name for _, name, _ in secret_references(manifests) if name.endswith("-s3")}
    frontend_refs = {
        name
        for namespace, name, _ in secret_references(
            [d for d in manifests if d["metadata"].get("name") == "faceblur-frontend"]
        )
    }
    assert page_s3_secret(manifests) in frontend_refs
    assert "faceblur-function-s3" not in frontend_refs
    assert mounted == {"faceblur-page-s3", "faceblur-function-s3"}


def test_the_ingress_certificate_is_made_for_its_host(
    manifests: list[Doc], created_secrets: list[dict[str, Any]]
) -> None:
    """Without a certificate given, the script makes one whose name is the Ingress's host,
    stored in the Secret the Ingress names (never in the repository)."""
    from cryptography import x509

    ingress = _ingress(manifests)
    (tls,) = ingress["spec"]["tls"]
    secret = next(
        s
        for s in created_secrets
        if (s["namespace"], s["name"]) == (ingress["metadata"]["namespace"], tls["secretName"])
    )
    certificate = x509.load_pem_x509_certificate(secret["data"]["tls.crt"].encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert set(names.value.get_values_for_type(x509.DNSName)) == set(tls["hosts"])
    assert "PRIVATE KEY" in secret["data"]["tls.key"]
    assert not list(K8S.glob("*.crt")) and not list(K8S.glob("*.key"))


def test_the_secret_script_refuses_one_s3_key_for_both(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIO_", "FACEBLUR_"))}
    env |= {"FACEBLUR_FUNCTION_S3_ACCESS_KEY": "same", "FACEBLUR_PAGE_S3_ACCESS_KEY": "same"}
    env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"  # no kubectl is ever reached
    done = subprocess.run(
        ["bash", str(K8S / "create-secrets.sh")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "different S3 access keys" in done.stderr


def test_policy_evaluation_follows_kubernetes_rules() -> None:
    """The small evaluator the flow checks rest on, on cases with a known answer."""
    pods = {
        "a": ("ns1", {"app": "a"}, {80}),
        "b": ("ns2", {"app": "b"}, {80}),
        "c": ("ns2", {"app": "c"}, {80}),
        OUTSIDE: (None, {}, {80}),
    }
    deny_b = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "d", "namespace": "ns2"},
        "spec": {"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"]},
    }
    assert allowed([], pods, "a", "b", 80, "TCP")  # no policy: open
    assert not allowed([deny_b], pods, "a", "b", 80, "TCP")
    assert allowed([deny_b], pods, "a", "c", 80, "TCP")  # c is not selected
    from_ns1 = copy.deepcopy(deny_b)
    from_ns1["spec"]["ingress"] = [
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ns1"}}}
            ],
            "ports": [{"port": 80}],
        }
    ]
    assert allowed([from_ns1], pods, "a", "b", 80, "TCP")
    assert not allowed([from_ns1], pods, "a", "b", 81, "TCP")
    assert not allowed([from_ns1], pods, "a", "b", 80, "UDP")
    assert not allowed([from_ns1], pods, "c", "b", 80, "TCP")
    # A podSelector alone means the policy's own namespace.
    same_ns = copy.deepcopy(deny_b)
    same_ns["spec"]["ingress"] = [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}]
    assert not allowed([same_ns], pods, "a", "b", 80, "TCP")
    egress = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "e", "namespace": "ns1"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {}}]}],
        },
    }
    assert not allowed([egress], pods, "a", OUTSIDE, 80, "TCP")
    assert not allowed([egress], pods, "a", "b", 80, "TCP")  # another namespace
    expression = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["b", "c"]}]}
    assert selects(expression, {"app": "c"}) and not selects(expression, {"app": "a"})


def test_the_readme_deploy_starts_what_the_manifests_rely_on(manifests: list[Doc]) -> None:
    """NetworkPolicies do nothing without a network plugin that enforces them (Minikube's
    default one does not), and the Ingress needs its controller: the README's deploy
    starts both, and installs the controller the policies let in."""
    readme = (ROOT / "README.md").read_text()
    deploy = readme[readme.index("## Deploy on Minikube") :]
    (start,) = [line for line in deploy.splitlines() if line.startswith("minikube start")]
    assert policies(manifests) and re.search(r"--cni=(calico|cilium)\b", start)
    (ingress,) = [d for d in manifests if d["kind"] == "Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert "minikube addons enable ingress" in deploy  # ingress-nginx, namespace ingress-nginx
    let_in = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in _policy(manifests, "faceblur", "faceblur-frontend")["spec"]["ingress"]
        for peer in rule["from"]
    }
    assert let_in == {CHART_PODS["ingress-controller"][0]}
    host = ingress["spec"]["rules"][0]["host"]
    assert f"https://{host}" in deploy
