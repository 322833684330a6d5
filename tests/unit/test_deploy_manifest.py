"""The Kubernetes worker manifest: a StatefulSet of static group members, each named after its pod."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "worker.yaml"


def test_workers_are_a_statefulset_with_the_pod_name_as_group_instance_id():
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc}
    workers = docs["StatefulSet"]
    assert docs["Service"]["spec"]["clusterIP"] == "None"
    assert workers["spec"]["serviceName"] == docs["Service"]["metadata"]["name"]
    [container] = workers["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    instance = env["STREAM_NER_WORKER__GROUP_INSTANCE_ID"]
    assert instance["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
