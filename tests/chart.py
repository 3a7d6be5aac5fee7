"""The Helm chart, checked offline: strict lint, rendering, and Kubernetes schema validation.

`python -m tests.chart` (run by `make helm-lint`) lints `helm/ragbot` strictly, renders it with
the default values and with every value set in `helm/ragbot/ci/`, and validates each rendered
manifest against the Kubernetes schemas that `kubernetes-validate` bundles. Helm itself runs
in-process through the Helm 4 library binding; no `helm` binary, cluster or network is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

try:
    import helm_python as helm
except ImportError:  # no wheel for this platform (Linux on ARM)
    helm = None

CHART = Path(__file__).resolve().parent.parent / "helm" / "ragbot"
KUBE_VERSION = "1.30.0"
WARNING = 2


def value_sets() -> dict[str, dict[str, Any]]:
    """The defaults, and each CI value set by file name."""
    sets: dict[str, dict[str, Any]] = {"default": {}}
    for path in sorted((CHART / "ci").glob("*.yaml")):
        sets[path.name] = yaml.safe_load(path.read_text()) or {}
    return sets


def lint(values: dict[str, Any] | None = None) -> list[str]:
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [str(e) for e in report.get("errors") or []]
    for message in report.get("messages") or []:
        if int(message.get("severity", 0)) >= WARNING:
            problems.append(f"{message.get('path')}: {message.get('error')}")
    return problems


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every rendered manifest, in template order."""
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values or {}, name="acme", namespace="ragbot", is_install=True)
    manifests: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        manifests += [doc for doc in yaml.safe_load_all(text) if doc]
    return manifests


def notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values or {}, name="acme", namespace="ragbot", is_install=True)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


# Custom resources of the Prometheus Operator: no schema for them ships offline, so only their
# outline is checked here (their content is checked in tests/test_helm.py).
OPERATOR_API = "monitoring.coreos.com/v1"


def invalid(manifests: list[dict[str, Any]]) -> list[str]:
    problems = []
    for manifest in manifests:
        name = f"{manifest.get('kind')}/{(manifest.get('metadata') or {}).get('name')}"
        if manifest.get("apiVersion") == OPERATOR_API:
            if not (manifest.get("metadata", {}).get("name") and manifest.get("spec")):
                problems.append(f"{name}: a custom resource needs metadata.name and spec")
            continue
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{name}: {exc.message} at {'.'.join(map(str, exc.path))}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{name}: no schema ({exc})")
    return problems


def main() -> int:
    if helm is None:
        print("helm-python-sdk is not available on this platform: the chart was not checked")
        return 0
    problems = [f"lint: {p}" for p in lint()]
    for label, values in value_sets().items():
        problems += [f"lint ({label}): {p}" for p in lint(values)] if values else []
        manifests = render(values)
        problems += [f"{label}: {p}" for p in invalid(manifests)]
        print(f"{label}: {len(manifests)} manifests rendered and validated")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
