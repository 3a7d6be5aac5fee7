"""What an operator relies on in the Helm chart, checked on the rendered manifests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart import invalid, lint, notes, render, value_sets

helm = pytest.importorskip("helm_python", reason="no helm-python-sdk wheel for this platform")

SECRETS = {"SLACK_BOT_TOKEN": "xoxb-do-not-leak", "OPENAI_API_KEY": "sk-do-not-leak"}


def kinds(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def containers(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for workload in [
        *kinds(manifests, "Deployment").values(),
        *kinds(manifests, "StatefulSet").values(),
    ]:
        found += workload["spec"]["template"]["spec"]["containers"]
    return found


def test_the_chart_lints_strictly_and_every_value_set_validates() -> None:
    assert lint() == []
    for label, values in value_sets().items():
        assert invalid(render(values)) == [], label


def test_secrets_never_reach_a_config_map() -> None:
    external = value_sets()["slack-external-stores-values.yaml"]
    for values in ({"secrets": SECRETS}, external):
        manifests = render(values)
        config = kinds(manifests, "ConfigMap")["acme-ragbot-config"]
        text = str(config["data"])
        assert "do-not-leak" not in text and "s3cret" not in text and "qdrant-key" not in text
    (secret,) = kinds(render({"secrets": SECRETS}), "Secret").values()
    assert secret["stringData"]["SLACK_BOT_TOKEN"] == "xoxb-do-not-leak"
    with pytest.raises(helm.HelmRenderError, match=r"env\.OPENAI_API_KEY looks like a secret"):
        render({"env": {"OPENAI_API_KEY": "sk-oops"}})


def test_an_existing_secret_replaces_the_charts_own() -> None:
    manifests = render(value_sets()["slack-external-stores-values.yaml"])
    assert kinds(manifests, "Secret") == {}
    for container in containers(manifests):
        refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
        assert refs in ([], ["ragbot-slack"])


def test_the_front_door_has_probes_and_every_pod_runs_locked_down() -> None:
    manifests = render()
    front = kinds(manifests, "Deployment")["acme-ragbot-front-door"]["spec"]["template"]["spec"]
    (container,) = front["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for container in containers(manifests):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["limits"] and container["resources"]["requests"]
    for workload in kinds(manifests, "Deployment").values():
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_beat_runs_exactly_once_and_workers_are_separate() -> None:
    manifests = render(
        {
            "answerWorkers": {
                "replicas": 5,
                "concurrency": 2,
                "resources": {},
                "autoscaling": {
                    "enabled": False,
                    "minReplicas": 1,
                    "maxReplicas": 1,
                    "targetCPUUtilizationPercentage": 50,
                },
            }
        }
    )
    deployments = kinds(manifests, "Deployment")
    beat = deployments["acme-ragbot-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"] == {"type": "Recreate"}
    answer = deployments["acme-ragbot-answer-worker"]
    index = deployments["acme-ragbot-index-worker"]
    assert answer["spec"]["replicas"] == 5
    assert answer["spec"]["template"]["spec"]["containers"][0]["args"][:3] == [
        "worker",
        "-Q",
        "answer",
    ]
    assert index["spec"]["template"]["spec"]["containers"][0]["args"][:3] == [
        "worker",
        "-Q",
        "index",
    ]
    targets = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in kinds(render(), "HorizontalPodAutoscaler").values()
    }
    assert targets == {"acme-ragbot-front-door", "acme-ragbot-answer-worker"}
    with pytest.raises(helm.HelmValuesError, match="'replicas' not allowed"):
        render({"beat": {"replicas": 2}})


def test_embedding_pods_are_opt_in_and_scale_on_their_queue() -> None:
    assert "acme-ragbot-embed-worker" not in kinds(render(), "Deployment")
    assert "RAGBOT_EMBED_FANOUT" not in kinds(render(), "ConfigMap")["acme-ragbot-config"]["data"]

    manifests = render(value_sets()["slack-external-stores-values.yaml"])
    embed = kinds(manifests, "Deployment")["acme-ragbot-embed-worker"]["spec"]
    pod = embed["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:5] == ["worker", "-Q", "embed", "--concurrency", "2"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"accelerator": "nvidia-l4"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "replicas" not in embed, "the autoscaler owns the count"
    (metric,) = kinds(manifests, "HorizontalPodAutoscaler")["acme-ragbot-embed-worker"]["spec"][
        "metrics"
    ]
    assert metric["external"]["metric"] == {
        "name": "ragbot_queue_depth",
        "selector": {"matchLabels": {"queue": "embed"}},
    }
    config = kinds(manifests, "ConfigMap")["acme-ragbot-config"]["data"]
    assert config["RAGBOT_EMBED_FANOUT"] == "true"
    assert config["RAGBOT_EMBED_BATCHES_IN_FLIGHT"] == "16", "two per batch slot at most pods"
    others = kinds(manifests, "Deployment")["acme-ragbot-index-worker"]["spec"]["template"]
    assert "nodeSelector" not in others["spec"], "only embedding pods go to GPU nodes"

    cpu = render({"embedWorkers": {"enabled": True}})
    (metric,) = kinds(cpu, "HorizontalPodAutoscaler")["acme-ragbot-embed-worker"]["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    with pytest.raises(helm.HelmValuesError, match="metric"):
        render({"embedWorkers": {"autoscaling": {"metric": "memory"}}})


def test_external_redis_and_qdrant_replace_the_stateful_sets() -> None:
    bundled = render()
    assert set(kinds(bundled, "StatefulSet")) == {"acme-ragbot-redis", "acme-ragbot-qdrant"}
    config = kinds(bundled, "ConfigMap")["acme-ragbot-config"]
    assert config["data"]["QDRANT_URL"] == "http://acme-ragbot-qdrant:6333"
    assert config["data"]["REDIS_URL"] == "redis://acme-ragbot-redis:6379/0"

    values = {
        "redis": {"enabled": False},
        "externalRedis": {"url": "redis://:pw@redis.internal:6379/0"},
        "qdrant": {"enabled": False},
        "externalQdrant": {"url": "https://qdrant.internal:6333", "apiKey": "k"},
    }
    external = render(values)
    assert kinds(external, "StatefulSet") == {}
    config = kinds(external, "ConfigMap")["acme-ragbot-config"]
    (secret,) = kinds(external, "Secret").values()
    assert (
        config["data"]["QDRANT_URL"] == "https://qdrant.internal:6333"
        and "REDIS_URL" not in config["data"]
    )
    assert secret["stringData"]["REDIS_URL"] == "redis://:pw@redis.internal:6379/0"
    assert secret["stringData"]["QDRANT_API_KEY"] == "k"
    with pytest.raises(helm.HelmRenderError, match=r"externalRedis\.url is required"):
        render({"redis": {"enabled": False}})


def test_a_changed_secret_rolls_the_pods() -> None:
    def checksums(values: dict[str, Any]) -> set[str]:
        deployments = kinds(render(values), "Deployment").values()
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] for d in deployments
        }

    before, after = (
        checksums({"secrets": SECRETS}),
        checksums({"secrets": SECRETS | {"X_TOKEN": "new"}}),
    )
    assert len(before) == 1 and before != after


def test_bad_values_are_refused_with_the_setting_named() -> None:
    with pytest.raises(helm.HelmValuesError, match=r"/frontDoor/replicas.*minimum"):
        render({"frontDoor": {"replicas": 0}})
    with pytest.raises(helm.HelmValuesError, match="/qdrant/image/tag"):
        render({"qdrant": {"image": {"tag": "latest"}}})
    with pytest.raises(helm.HelmRenderError, match=r"needs env\.MICROSOFT_APP_TENANT_ID"):
        render({"env": {"MICROSOFT_APP_ID": "0b5c6a8e-1f2d-4c3b-9a7e-6d5f4e3c2b1a"}})


def test_notes_give_the_slack_and_teams_endpoints() -> None:
    text = notes(value_sets()["teams-and-slack-ingress-values.yaml"])
    assert "https://ragbot.acme.com/slack/events" in text
    assert "https://ragbot.acme.com/api/messages" in text


def test_monitoring_ships_a_dashboard_and_optionally_scrapes_and_alerts() -> None:
    import json

    default = render()
    assert not kinds(default, "ServiceMonitor") and not kinds(default, "PrometheusRule")
    (dashboard,) = [m for m in kinds(default, "ConfigMap").values() if "ragbot.json" in m["data"]]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    exprs = [
        t["expr"]
        for p in json.loads(dashboard["data"]["ragbot.json"])["panels"]
        for t in p["targets"]
    ]
    served = (
        "ragbot_answers_total",
        "ragbot_answer_latency_seconds_bucket",
        "ragbot_queue_depth",
        "ragbot_source_last_success_timestamp_seconds",
        "ragbot_sync_seconds_bucket",
        "ragbot_embedded_chunks_total",
        "ragbot_embed_seconds_total",
        "ragbot_answer_views_total",
        "ragbot_http_request_seconds_bucket",
        "ragbot_search_seconds_bucket",
    )
    assert all(any(name in expr for name in served) for expr in exprs)

    values = {
        "env": {"RAGBOT_SYNC_INTERVAL_SECONDS": "600"},
        "monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    }
    assert lint(values) == []
    manifests = render(values)
    (monitor,) = kinds(manifests, "ServiceMonitor").values()
    service = next(
        s
        for s in kinds(manifests, "Service").values()
        if s["metadata"]["labels"].get("app.kubernetes.io/component") == "front-door"
    )
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0] == {
        "port": "http",
        "path": "/metrics",
        "interval": "30s",
    }
    (rules,) = kinds(manifests, "PrometheusRule").values()
    alerts = {r["alert"]: r for r in rules["spec"]["groups"][0]["rules"]}
    assert "> 1800" in alerts["RagbotSourceSyncStale"]["expr"], "three sync intervals"
    assert "> 0.1" in alerts["RagbotAnswersFailing"]["expr"]
    assert "> 50" in alerts["RagbotQuestionsWaiting"]["expr"]
    others = [m for m in manifests if m["kind"] not in ("ServiceMonitor", "PrometheusRule")]
    assert invalid(others) == []
