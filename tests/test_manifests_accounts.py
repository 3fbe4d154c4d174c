"""The accounts database in the cluster: the StatefulSet, its Secret and the URL agree."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy.engine import make_url
from test_manifests import container_env, find, load_manifests, run_secret_script

from faceblur.config import SECRETS, cluster_env

ROOT = Path(__file__).resolve().parents[1]


def test_the_cluster_turns_accounts_on_and_make_run_keeps_them_off():
    from faceblur.config import ENV_VARS

    assert ENV_VARS["FACEBLUR_AUTH"] == "off"
    assert cluster_env()["FACEBLUR_AUTH"] == "on"
    function_env = yaml.safe_load((ROOT / "k8s" / "function-settings.yml").read_text())
    assert function_env["environment"]["FACEBLUR_AUTH"] == "on"


def test_the_database_url_names_the_statefulset_its_user_and_its_password(tmp_path):
    docs = load_manifests()
    created = {(s["namespace"], s["name"]): s["data"] for s in run_secret_script(tmp_path)}
    postgres = find(docs, "StatefulSet", "postgres", "faceblur")
    service = find(docs, "Service", "postgres", "faceblur")
    assert postgres is not None and service is not None
    container = postgres["spec"]["template"]["spec"]["containers"][0]
    env = container_env(docs, postgres, container)
    password = created[("faceblur", "faceblur-postgres")]["postgres-password"]

    for namespace, secret in (
        ("faceblur", "faceblur-accounts"),
        ("openfaas-fn", "faceblur-database-url"),
    ):
        url = make_url(created[(namespace, secret)]["faceblur-database-url"])
        assert url.drivername == "postgresql+psycopg"  # the driver the images install
        assert url.host == f"{service['metadata']['name']}.faceblur.svc.cluster.local"
        assert url.port == service["spec"]["ports"][0]["port"] == 5432
        assert url.username == env["POSTGRES_USER"] and url.database == env["POSTGRES_DB"]
        assert url.password == password
    assert "faceblur-database-url" in SECRETS and "faceblur-internal-token" in SECRETS


def test_the_database_keeps_its_data_on_a_claim():
    postgres = find(load_manifests(), "StatefulSet", "postgres", "faceblur")
    claims = {c["metadata"]["name"] for c in postgres["spec"]["volumeClaimTemplates"]}
    container = postgres["spec"]["template"]["spec"]["containers"][0]
    data_mount = next(m for m in container["volumeMounts"] if m["name"] in claims)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PGDATA"].startswith(data_mount["mountPath"] + "/")
