"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/nginx.conf, deploy/k8s/) read as their tools read
them, for the tests that pin what each promises: YAML documents, nginx directives (crossplane, NGINX's own parser),
Dockerfile instructions (dockerfile-parse), and the team config as the gateway loads it.

`python -m tests.deploy_files` rewrites deploy/k8s/configmap.yaml from deploy/dragoman.yaml (a test keeps them the
same)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dragoman.config.load import load_config
from dragoman.config.model import Config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
TEAM_CONFIG = DEPLOY / "dragoman.yaml"
# The env the team config expects from its secrets (deploy/.env.example, the k8s Secret), as placeholders.
TEAM_ENV = {"OPENAI_PROD": "sk-placeholder", "DRAGOMAN_API_KEYS": "team-key-1,team-key-2",
            "DRAGOMAN_ADMIN_KEYS": "admin-key-1"}


def team_config() -> Config:
    return load_config(str(TEAM_CONFIG), TEAM_ENV)


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # safe_load resolves the `<<: *gateway` merges


def k8s_documents() -> dict[str, dict[str, Any]]:
    """Every manifest under deploy/k8s/, by kind (one resource of each kind)."""
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                assert doc["kind"] not in docs, f"two {doc['kind']} manifests"
                docs[doc["kind"]] = doc
    return docs


def nginx_directives(path: Path = DEPLOY / "nginx.conf") -> list[dict[str, Any]]:
    """nginx.conf's directives, parsed by crossplane (NGINX's own config parser in Python), nested blocks included."""
    import crossplane

    parsed = crossplane.parse(str(path), single=True, check_ctx=True, check_args=True)
    assert parsed["status"] == "ok", parsed["errors"]
    return parsed["config"][0]["parsed"]


def find_block(directives: list[dict[str, Any]], *names_args: tuple[str, ...]) -> list[dict[str, Any]]:
    """The block reached through (directive, *args) steps: find_block(d, ("http",), ("server",), ("location", "/"))."""
    for step in names_args:
        name, args = step[0], list(step[1:])
        match = [d for d in directives if d["directive"] == name and (not args or d["args"] == args)]
        assert len(match) == 1, f"expected one {' '.join(step)} block, found {len(match)}"
        directives = match[0]["block"]
    return directives


def directive_args(block: list[dict[str, Any]], name: str) -> list[list[str]]:
    return [d["args"] for d in block if d["directive"] == name]


def seconds(value: str | int | float) -> float:
    """'40s', '11m', '1h30m', 660 → seconds (compose durations and nginx times)."""
    if isinstance(value, (int, float)):
        return float(value)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", value)
    assert parts and "".join(n + (u or "") for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(n) * units[u or "s"] for n, u in parts)


CONFIGMAP_HEAD = """\
# deploy/dragoman.yaml, as the gateways read it: `python -m tests.deploy_files` writes this file from it.
# Edit it in place (kubectl apply): each instance notices the change and reloads it, validated first.
apiVersion: v1
kind: ConfigMap
metadata:
  name: dragoman-config
  labels: {app.kubernetes.io/name: dragoman}
data:
  dragoman.yaml: |
"""


def configmap_text() -> str:
    """deploy/k8s/configmap.yaml as it must read: the head above, then deploy/dragoman.yaml indented under it."""
    lines = TEAM_CONFIG.read_text().splitlines(keepends=True)
    return CONFIGMAP_HEAD + "".join("    " + line if line.strip() else "\n" for line in lines)


if __name__ == "__main__":
    (K8S / "configmap.yaml").write_text(configmap_text())
