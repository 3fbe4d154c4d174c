"""Write the cluster's settings files from faceblur.config, the one list of them.

    python functions/local/deploy_settings.py      (or `make settings`)

- k8s/settings.yaml: the `faceblur-config` ConfigMap the frontend and the bucket Job
  read with envFrom;
- k8s/function-settings.yml: the function's settings, which stack.yml names as its
  `environment_file` (faas-cli reads its `environment:` map).

Both hold `faceblur.config.cluster_env()`: change a name or default there and run this
again; tests/test_manifests.py fails while the files are out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from faceblur.config import cluster_env

ROOT = Path(__file__).resolve().parents[2]
CONFIG_MAP = ROOT / "k8s" / "settings.yaml"
FUNCTION_ENV = ROOT / "k8s" / "function-settings.yml"
HEADER = "# Written by functions/local/deploy_settings.py from faceblur/config.py: do not edit.\n"


def _dump(document: dict) -> str:
    # Values are str: YAML quotes those that would read as numbers or booleans, since
    # Kubernetes and faas-cli want strings.
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=100)


def config_map_text() -> str:
    values = {name: str(value) for name, value in cluster_env().items()}
    return _dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "faceblur-config",
                "namespace": "faceblur",
                "labels": {"app.kubernetes.io/part-of": "faceblur"},
            },
            "data": values,
        }
    )


def function_env_text() -> str:
    return _dump({"environment": {name: str(value) for name, value in cluster_env().items()}})


def generated_files() -> dict[Path, str]:
    return {CONFIG_MAP: config_map_text(), FUNCTION_ENV: function_env_text()}


def function_environment(stack: dict, root: Path = ROOT) -> dict[str, object]:
    """The environment faas-cli gives the (one) function of `stack`: its
    environment_file maps, then its own `environment:` on top."""
    (function,) = stack["functions"].values()
    merged: dict[str, object] = {}
    for name in function.get("environment_file", []):
        merged.update(yaml.safe_load((root / name).read_text()).get("environment", {}))
    merged.update(function.get("environment", {}))
    return merged


def main() -> int:
    for path, text in generated_files().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
