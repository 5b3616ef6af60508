"""Read built Kubernetes manifests and match label selectors.

Shared by the check_*.py scripts that scripts/validate-deploy.sh runs on the
output of `kubectl kustomize`.
"""

from pathlib import Path

import yaml

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


class CheckFailed(Exception):
    """A check found problems; the message lists them, one per line."""


def load_documents(*paths):
    """Return every non-empty YAML document of the given files, in order."""
    documents = []
    for path in paths:
        with open(path) as stream:
            documents.extend(doc for doc in yaml.safe_load_all(stream) if doc)
    return documents


def describe(doc):
    """Return "Kind namespace/name" for messages."""
    metadata = doc.get("metadata", {})
    namespace = metadata.get("namespace", "")
    prefix = f"{namespace}/" if namespace else ""
    return f"{doc.get('kind')} {prefix}{metadata.get('name')}"


def workloads(documents):
    return [doc for doc in documents if doc.get("kind") in WORKLOAD_KINDS]


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def pod_labels(workload):
    return workload["spec"]["template"].get("metadata", {}).get("labels", {})


def all_containers(spec):
    """Return the init containers and containers of a pod spec."""
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def selector_matches(selector, labels):
    """Return whether a LabelSelector (matchLabels, matchExpressions) selects labels.

    An empty selector selects everything, as in the Kubernetes API.
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key = expression["key"]
        operator = expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def raise_if_problems(problems):
    if problems:
        raise CheckFailed("\n".join(problems))


def repository_root():
    return Path(__file__).resolve().parents[2]
