"""Settings: secrets from files before env, no default credential beyond loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceblur.config import LOOPBACK_CREDENTIALS, ConfigError, load_settings
from faceblur.options import parse_flag

REMOTE = {"FACEBLUR_S3_ENDPOINT": "minio.faceblur.svc.cluster.local:9000"}


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9000", "localhost:9000", "[::1]:9000"])
def test_loopback_servers_may_use_the_local_default_keys(endpoint: str, tmp_path: Path) -> None:
    settings = load_settings({"FACEBLUR_S3_ENDPOINT": endpoint}, secrets_dir=tmp_path)
    assert (settings.s3_access_key, settings.s3_secret_key) == LOOPBACK_CREDENTIALS


@pytest.mark.parametrize(
    "endpoint", ["minio.faceblur.svc.cluster.local:9000", "10.0.0.5:9000", "s3.example.com"]
)
def test_no_default_credential_works_beyond_loopback(endpoint: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"FACEBLUR_S3_ENDPOINT": endpoint}, secrets_dir=tmp_path)
    assert "faceblur-s3-access-key" in str(error.value)


def test_secret_files_win_over_the_environment(tmp_path: Path) -> None:
    (tmp_path / "faceblur-s3-access-key").write_text("from-file\n")
    (tmp_path / "faceblur-s3-secret-key").write_text("secret-from-file\n")
    environ = {**REMOTE, "FACEBLUR_S3_ACCESS_KEY": "from-env", "FACEBLUR_S3_SECRET_KEY": "x"}
    settings = load_settings(environ, secrets_dir=tmp_path)
    assert (settings.s3_access_key, settings.s3_secret_key) == ("from-file", "secret-from-file")
    fallback = load_settings(environ, secrets_dir=tmp_path / "missing")
    assert (fallback.s3_access_key, fallback.s3_secret_key) == ("from-env", "x")


def test_public_url_defaults_to_the_endpoint_and_is_validated(tmp_path: Path) -> None:
    assert load_settings({}, secrets_dir=tmp_path).s3_public_url == "http://127.0.0.1:9000"
    secure = load_settings({"FACEBLUR_S3_SECURE": "yes"}, secrets_dir=tmp_path)
    assert secure.s3_public_url == "https://127.0.0.1:9000"
    public = {"FACEBLUR_S3_PUBLIC_URL": "https://files.example.org/"}
    assert load_settings(public, secrets_dir=tmp_path).s3_public_url == "https://files.example.org"
    for bad in ("files.example.org", "ftp://files.example.org", "https://files.example.org/x"):
        with pytest.raises(ConfigError, match="FACEBLUR_S3_PUBLIC_URL"):
            load_settings({"FACEBLUR_S3_PUBLIC_URL": bad}, secrets_dir=tmp_path)


@pytest.mark.parametrize(
    "environ,name",
    [
        ({"FACEBLUR_MAX_BYTES": "lots"}, "FACEBLUR_MAX_BYTES"),
        ({"FACEBLUR_MAX_PIXELS": "0"}, "FACEBLUR_MAX_PIXELS"),
        ({"FACEBLUR_S3_SECURE": "maybe"}, "FACEBLUR_S3_SECURE"),
        ({"FACEBLUR_BUCKET_RESULTS": "originals"}, "buckets must differ"),
        ({"FACEBLUR_MAX_VIDEO_FRAMES": "-5"}, "FACEBLUR_MAX_VIDEO_FRAMES"),
        ({"FACEBLUR_VIDEO_JOB_SECONDS": "soon"}, "FACEBLUR_VIDEO_JOB_SECONDS"),
        ({"FACEBLUR_REFUSE_UNHIDDEN_FACES": "perhaps"}, "FACEBLUR_REFUSE_UNHIDDEN_FACES"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict, name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(environ, secrets_dir=tmp_path)


@pytest.mark.parametrize(
    "value,expected",
    [(True, True), ("TRUE", True), (" yes ", True), ("1", True), ("on", True)]
    + [(False, False), ("false", False), ("No", False), ("0", False), ("off", False)],
)
def test_parse_flag_reads_the_usual_spellings(value: object, expected: bool) -> None:
    assert parse_flag(value) is expected


@pytest.mark.parametrize("value", ["maybe", "", "2", None])
def test_parse_flag_refuses_anything_else(value: object) -> None:
    with pytest.raises(ValueError) as refused:
        parse_flag(value)
    assert refused.value.code == "bad_option"


def test_the_webhook_token_comes_from_its_secret_and_has_no_default(tmp_path: Path) -> None:
    assert load_settings({}, secrets_dir=tmp_path).webhook_token is None
    from_env = load_settings({"FACEBLUR_WEBHOOK_TOKEN": "t0ken"}, secrets_dir=tmp_path)
    assert from_env.webhook_token == "t0ken"
    (tmp_path / "faceblur-webhook-token").write_text("from-file\n")
    assert load_settings({}, secrets_dir=tmp_path).webhook_token == "from-file"


def test_the_functions_audit_key_must_be_a_pem_private_key(tmp_path) -> None:
    from faceblur.sealing import audit, base

    pem = base.private_key_pem(audit.new_audit_key(), None).decode()
    (tmp_path / "faceblur-audit-key").write_text(pem)
    assert load_settings({}, secrets_dir=tmp_path).audit_key == pem.strip()
    assert load_settings({}, secrets_dir=tmp_path / "none").audit_key is None
    with pytest.raises(ConfigError, match="faceblur-audit-key"):
        load_settings({"FACEBLUR_AUDIT_KEY": "not-a-key"}, secrets_dir=tmp_path / "none")
