"""Settings from the environment and OpenFaaS/Kubernetes secrets, validated once.

This module is the one list of configuration names and defaults: the function and
the frontend read them here; the cluster's settings (k8s/settings.yaml, read by the
frontend and the bucket Job, and k8s/function-settings.yml, which stack.yml names
as its environment_file) are written from `ENV_VARS` and `CLUSTER_ENV` by
functions/local/deploy_settings.py (`make settings`; tests check they are current
and cross-check `SECRETS` with the manifests).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from faceblur.options import parse_flag

SECRETS_DIR = "/var/openfaas/secrets"

# Plain settings: environment variable -> default ("" = no default).
ENV_VARS: dict[str, str] = {
    "FACEBLUR_S3_ENDPOINT": "127.0.0.1:9000",
    "FACEBLUR_S3_SECURE": "false",
    "FACEBLUR_S3_REGION": "us-east-1",
    # Where browsers reach the S3 server, for presigned result URLs (empty: the endpoint).
    "FACEBLUR_S3_PUBLIC_URL": "",
    "FACEBLUR_BUCKET_INBOX": "inbox",
    "FACEBLUR_BUCKET_ORIGINALS": "originals",
    "FACEBLUR_BUCKET_RESULTS": "results",
    "FACEBLUR_MAX_BYTES": str(25 * 1024 * 1024),
    "FACEBLUR_MAX_PIXELS": str(50_000_000),
    # Videos (jobs through the inbox): bytes of one file, its length, pixels of one frame.
    "FACEBLUR_MAX_VIDEO_BYTES": str(500 * 1024 * 1024),
    "FACEBLUR_MAX_VIDEO_SECONDS": "600",
    "FACEBLUR_MAX_VIDEO_PIXELS": str(3840 * 2160),
    # Frames one video may hold, counted while decoding (the container's own figures can
    # be missing or false): the length limit at 60 frames/s.
    "FACEBLUR_MAX_VIDEO_FRAMES": str(600 * 60),
    # Wall-clock seconds one call running a video job may decode before the job is
    # stopped and failed: inside stack.yml's exec_timeout (15m), leaving a minute to
    # fetch and store the files.
    "FACEBLUR_VIDEO_JOB_SECONDS": str(14 * 60),
    # A video job is split into segments of about this many seconds, each one call of the
    # function on any free replica (and `faceblur blur --jobs`'s default): a few minutes
    # of one core at 1080p, so a lost replica costs one segment, not the job.
    "FACEBLUR_VIDEO_SEGMENT_SECONDS": "10",
    # Calls a segment gets before its job fails with the segment's reason.
    "FACEBLUR_VIDEO_SEGMENT_TRIES": "3",
    "FACEBLUR_PRESIGN_EXPIRY_SECONDS": "3600",
    "FACEBLUR_GATEWAY_URL": "http://127.0.0.1:8080",
    "FACEBLUR_FUNCTION_NAME": "faceblur",
    # Accounts (faceblur/accounts): off keeps the open, single-user behaviour of `make run`.
    "FACEBLUR_AUTH": "off",
    # Whether anyone may create an account on the page (else only `faceblur-admin user add`).
    "FACEBLUR_SIGNUP": "off",
    # Requests per minute one API key (or one signed-in person) may make of the function.
    "FACEBLUR_RATE_LIMIT_PER_MINUTE": "60",
    # Connect and read timeout of every S3 call: a stalled store is a 503 in seconds.
    "FACEBLUR_S3_TIMEOUT_SECONDS": "5",
    # Most bytes one "download all" zip may hold (413 above); the zip is streamed.
    "FACEBLUR_MAX_ZIP_BYTES": str(256 * 1024 * 1024),
    # Hosts the async route may post results to (X-Callback-Url); comma-separated,
    # empty = callbacks refused, so a caller cannot make the function post inward.
    # "host" allows ports 80 (http) and 443 (https) only; "host:8443" that port alone.
    "FACEBLUR_CALLBACK_HOSTS": "",
    # Days every object (originals, results, inbox) is kept: the bucket set-up Job's
    # lifecycle rule, and what the page tells people.
    "FACEBLUR_RETENTION_DAYS": "30",
    # A file holding the authority's sealing public key (local runs; in the cluster: the
    # secret faceblur-seal-public-key). Empty: no sealing unless that secret is set.
    "FACEBLUR_SEAL_PUBLIC_KEY_FILE": "",
    # "on": a photo request that would hide nothing (detect=false with no regions, a
    # threshold no face reaches) is refused where the detector finds faces in it, rather
    # than stored as a "result" that shows every face. On in the cluster.
    "FACEBLUR_REFUSE_UNHIDDEN_FACES": "off",
}

# What a cluster deployment (k8s/, stack.yml) changes from the defaults above: where
# the code reaches MinIO and the gateway (in-cluster service names), and where a
# browser opens presigned result URLs (the MinIO port-forward on Minikube; MinIO's
# public address, an Ingress, in a real cluster).
CLUSTER_ENV: dict[str, str] = {
    "FACEBLUR_S3_ENDPOINT": "minio.faceblur.svc.cluster.local:9000",
    "FACEBLUR_S3_PUBLIC_URL": "http://127.0.0.1:9000",
    "FACEBLUR_GATEWAY_URL": "http://gateway.openfaas.svc.cluster.local:8080",
    "FACEBLUR_AUTH": "on",
    "FACEBLUR_REFUSE_UNHIDDEN_FACES": "on",
}


def cluster_env() -> dict[str, str]:
    """Every setting's value in the cluster: the defaults with CLUSTER_ENV applied."""
    return {**ENV_VARS, **CLUSTER_ENV}


# Secrets: secret name (a file under SECRETS_DIR) -> environment fallback for local runs.
SECRETS: dict[str, str] = {
    "faceblur-s3-access-key": "FACEBLUR_S3_ACCESS_KEY",
    "faceblur-s3-secret-key": "FACEBLUR_S3_SECRET_KEY",
    "faceblur-frontend-secret-key": "FACEBLUR_FRONTEND_SECRET_KEY",
    # SQLAlchemy URL of the accounts database (empty: SQLite in .local/, for local runs).
    "faceblur-database-url": "FACEBLUR_DATABASE_URL",
    # Lets the page call the function on behalf of its signed-in person.
    "faceblur-internal-token": "FACEBLUR_INTERNAL_TOKEN",
    # The authority's X25519 public key (PEM) to seal originals for, or "off".
    "faceblur-seal-public-key": "FACEBLUR_SEAL_PUBLIC_KEY",
    # The bearer token the S3 server's bucket notifications carry (MinIO:
    # MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>); unset, the function takes no bucket event.
    "faceblur-webhook-token": "FACEBLUR_WEBHOOK_TOKEN",
    # The function's own Ed25519 audit key (PEM, PKCS#8): it signs the head of the log of
    # tracks shown through the service, so a cut tail is seen (faceblur.sealing.log).
    "faceblur-audit-key": "FACEBLUR_AUDIT_KEY",
}

# The sealing key's value that says, explicitly, that originals are stored in the clear.
SEAL_OFF = "off"
PUBLIC_KEY_ARMOUR = "-----BEGIN PUBLIC KEY-----"
PRIVATE_KEY_ARMOUR = "-----BEGIN PRIVATE KEY-----"

# Only an S3 server on this machine may be reached with these: a local server
# ignores them, a real MinIO elsewhere must be given its own keys.
LOOPBACK_CREDENTIALS = ("faceblur-local", "faceblur-local-secret")


class ConfigError(ValueError):
    """A setting is missing or malformed (the message names the variable)."""

    code = "misconfigured"


@dataclass(frozen=True)
class Settings:
    s3_endpoint: str
    s3_secure: bool
    s3_region: str
    s3_public_url: str
    s3_access_key: str
    s3_secret_key: str
    bucket_inbox: str
    bucket_originals: str
    bucket_results: str
    max_bytes: int
    max_pixels: int
    presign_expiry_seconds: int
    gateway_url: str
    function_name: str
    frontend_secret_key: str | None
    s3_timeout_seconds: int = 5
    max_zip_bytes: int = 256 * 1024 * 1024
    callback_hosts: frozenset[str] = frozenset()
    retention_days: int = 30
    # PEM of the public key originals are sealed for (faceblur.sealing); None: stored in clear.
    seal_public_key: str | None = None
    max_video_bytes: int = 500 * 1024 * 1024
    max_video_seconds: int = 600
    max_video_pixels: int = 3840 * 2160
    max_video_frames: int = 600 * 60
    video_job_seconds: int = 14 * 60
    # The token bucket events must carry (faceblur-webhook-token); None: events refused.
    webhook_token: str | None = None
    # PEM of the function's audit key (faceblur-audit-key); None: the service's audit log
    # is chained but its head is not signed.
    audit_key: str | None = None
    refuse_unhidden_faces: bool = False
    video_segment_seconds: int = 10
    video_segment_tries: int = 3

    @property
    def output_buckets(self) -> tuple[str, str]:
        return (self.bucket_originals, self.bucket_results)


def read_secret(name: str, environ: Mapping[str, str], secrets_dir: str | Path) -> str | None:
    """A secret's value from its file, else from its environment fallback, else None."""
    path = Path(secrets_dir) / name
    if path.is_file():
        return path.read_text().strip() or None
    return environ.get(SECRETS[name]) or None


def is_loopback_endpoint(endpoint: str) -> bool:
    host = endpoint.rsplit(":", 1)[0].strip("[]") if ":" in endpoint else endpoint
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _positive_int(environ: Mapping[str, str], name: str) -> int:
    raw = environ.get(name) or ENV_VARS[name]
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def parse_hosts(text: str) -> frozenset[str]:
    """A comma-separated list of host names (each may end in :PORT), lower case, blanks
    dropped."""
    hosts = frozenset(host.strip().lower() for host in text.split(",") if host.strip())
    for host in hosts:
        name, colon, port = host.rpartition(":")
        if colon and not (name and port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"{host!r} is not a host or host:port")
    return hosts


def _bool(environ: Mapping[str, str], name: str) -> bool:
    try:
        return parse_flag(environ.get(name) or ENV_VARS[name])
    except ValueError as error:
        raise ConfigError(f"{name} {error}") from None


def _public_url(raw: str, endpoint: str, secure: bool) -> str:
    """scheme://host[:port] that browsers use; defaults to the endpoint the code uses."""
    if not raw:
        return f"{'https' if secure else 'http'}://{endpoint}"
    parsed = urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path.strip("/"):
        raise ConfigError(f"FACEBLUR_S3_PUBLIC_URL must look like http://host:port, got {raw!r}")
    return f"{parsed.scheme}://{parsed.netloc}"


def _seal_public_key(environ: Mapping[str, str], secrets_dir: str | Path) -> str | None:
    """The sealing public key (PEM) from its secret, env or file; None when sealing is off."""
    value = read_secret("faceblur-seal-public-key", environ, secrets_dir)
    path = environ.get("FACEBLUR_SEAL_PUBLIC_KEY_FILE")
    if value is None and path:
        try:
            value = Path(path).read_text().strip() or None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"FACEBLUR_SEAL_PUBLIC_KEY_FILE {path!r}: {error}") from None
    if value is None or value.lower() == SEAL_OFF:
        return None
    if "PRIVATE KEY" in value:
        raise ConfigError(
            "faceblur-seal-public-key holds a PRIVATE key: the function must only ever get "
            "the authority's public key (authority.pub)"
        )
    # Only the PEM's shape is checked here (settings hold no crypto): the sealing floor
    # loads the key itself, once per process, when the service is built.
    if not value.startswith(PUBLIC_KEY_ARMOUR):
        raise ConfigError(
            f"faceblur-seal-public-key: not a PEM public key ({PUBLIC_KEY_ARMOUR}...) "
            f"(or {SEAL_OFF!r})"
        )
    return value


def _audit_key(environ: Mapping[str, str], secrets_dir: str | Path) -> str | None:
    """The function's audit key (PEM); only its shape is checked here, as for sealing."""
    value = read_secret("faceblur-audit-key", environ, secrets_dir)
    if value is not None and not value.startswith(PRIVATE_KEY_ARMOUR):
        raise ConfigError(
            f"faceblur-audit-key: not an unencrypted PEM private key ({PRIVATE_KEY_ARMOUR}...): "
            "make one with `openssl genpkey -algorithm ed25519`"
        )
    return value


def load_settings(
    environ: Mapping[str, str] | None = None, secrets_dir: str | Path = SECRETS_DIR
) -> Settings:
    """Build the settings once at the edge; raise ConfigError with the variable's name."""
    environ = os.environ if environ is None else environ

    def plain(name: str) -> str:
        return environ.get(name) or ENV_VARS[name]

    endpoint = plain("FACEBLUR_S3_ENDPOINT")
    access_key = read_secret("faceblur-s3-access-key", environ, secrets_dir)
    secret_key = read_secret("faceblur-s3-secret-key", environ, secrets_dir)
    if access_key is None or secret_key is None:
        if not is_loopback_endpoint(endpoint):
            raise ConfigError(
                f"S3 credentials missing for {endpoint}: provide the secrets "
                "faceblur-s3-access-key and faceblur-s3-secret-key "
                "(or FACEBLUR_S3_ACCESS_KEY / FACEBLUR_S3_SECRET_KEY)"
            )
        access_key, secret_key = LOOPBACK_CREDENTIALS
    secure = _bool(environ, "FACEBLUR_S3_SECURE")
    public_url = _public_url(plain("FACEBLUR_S3_PUBLIC_URL"), endpoint, secure)
    buckets = [plain(f"FACEBLUR_BUCKET_{kind}") for kind in ("INBOX", "ORIGINALS", "RESULTS")]
    if len(set(buckets)) != 3:
        raise ConfigError(f"inbox, originals and results buckets must differ, got {buckets}")
    return Settings(
        s3_endpoint=endpoint,
        s3_secure=secure,
        s3_region=plain("FACEBLUR_S3_REGION"),
        s3_public_url=public_url,
        s3_access_key=access_key,
        s3_secret_key=secret_key,
        bucket_inbox=buckets[0],
        bucket_originals=buckets[1],
        bucket_results=buckets[2],
        max_bytes=_positive_int(environ, "FACEBLUR_MAX_BYTES"),
        max_pixels=_positive_int(environ, "FACEBLUR_MAX_PIXELS"),
        presign_expiry_seconds=_positive_int(environ, "FACEBLUR_PRESIGN_EXPIRY_SECONDS"),
        gateway_url=plain("FACEBLUR_GATEWAY_URL").rstrip("/"),
        function_name=plain("FACEBLUR_FUNCTION_NAME"),
        frontend_secret_key=read_secret("faceblur-frontend-secret-key", environ, secrets_dir),
        s3_timeout_seconds=_positive_int(environ, "FACEBLUR_S3_TIMEOUT_SECONDS"),
        max_zip_bytes=_positive_int(environ, "FACEBLUR_MAX_ZIP_BYTES"),
        callback_hosts=parse_hosts(plain("FACEBLUR_CALLBACK_HOSTS")),
        retention_days=_positive_int(environ, "FACEBLUR_RETENTION_DAYS"),
        seal_public_key=_seal_public_key(environ, secrets_dir),
        audit_key=_audit_key(environ, secrets_dir),
        max_video_bytes=_positive_int(environ, "FACEBLUR_MAX_VIDEO_BYTES"),
        max_video_seconds=_positive_int(environ, "FACEBLUR_MAX_VIDEO_SECONDS"),
        max_video_pixels=_positive_int(environ, "FACEBLUR_MAX_VIDEO_PIXELS"),
        max_video_frames=_positive_int(environ, "FACEBLUR_MAX_VIDEO_FRAMES"),
        video_job_seconds=_positive_int(environ, "FACEBLUR_VIDEO_JOB_SECONDS"),
        webhook_token=read_secret("faceblur-webhook-token", environ, secrets_dir),
        refuse_unhidden_faces=_bool(environ, "FACEBLUR_REFUSE_UNHIDDEN_FACES"),
        video_segment_seconds=_positive_int(environ, "FACEBLUR_VIDEO_SEGMENT_SECONDS"),
        video_segment_tries=_positive_int(environ, "FACEBLUR_VIDEO_SEGMENT_TRIES"),
    )
