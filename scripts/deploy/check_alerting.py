#!/usr/bin/env python3
"""Check the Prometheus and Alertmanager configuration beyond what promtool and amtool cover.

Usage:
  check_alerting.py alert-tests
  check_alerting.py prometheus-copy OUTPUT
  check_alerting.py alertmanager-copy OUTPUT BUILT_OBSERVABILITY.yaml

alert-tests
    Every alert in monitoring/base/metrics/rules has a promtool test case in
    which it fires and one in which it stays silent.

prometheus-copy
    Debian's promtool (2.42) is built without Kubernetes service discovery
    and rejects kubernetes_sd_configs. This checks those blocks here (role,
    namespaces, known keys) and that the rule files mounted from the
    prometheus-rules ConfigMap match rule_files, then writes a copy of
    prometheus.yml with each kubernetes_sd_configs replaced by an equivalent
    static target, for promtool to check everything else.

alertmanager-copy
    Debian's amtool (0.25) predates webhook_configs url_file. This checks
    that each url_file path is a key of a Secret mounted into the
    Alertmanager pod, then writes a copy with url_file replaced by a
    placeholder url, for amtool to check everything else.

Prints a one-line summary, or the problems on stderr and exits 1.
"""

import fnmatch
import sys
from pathlib import PurePosixPath

import yaml

from manifests import load_documents, pod_spec, repository_root, workloads

METRICS_DIR = repository_root() / "monitoring" / "base" / "metrics"
PROMETHEUS_CONFIG = METRICS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = METRICS_DIR / "alertmanager.yml"
KUBERNETES_SD_KEYS = {"role", "namespaces", "selectors", "attach_metadata", "api_server", "kubeconfig_file"}
KUBERNETES_SD_ROLES = {"pod", "service", "endpoints", "endpointslice", "node", "ingress"}
DISCOVERABLE_NAMESPACES = {"lintas", "lintas-observability"}
# Stands in for a discovered target in the copy given to promtool.
STATIC_TARGET = "kubernetes-discovered-target.invalid:80"
PLACEHOLDER_WEBHOOK_URL = "http://webhook-url-from-file.invalid/"


def load_rule_files():
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted((METRICS_DIR / "rules").glob("*.yaml"))}


def check_alert_tests():
    problems = []
    alerts = {
        rule["alert"]
        for rules in load_rule_files().values()
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    fires, silent = set(), set()
    for path in sorted((METRICS_DIR / "tests").glob("*.yaml")):
        for test in yaml.safe_load(path.read_text()).get("tests", []):
            for case in test.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else silent).add(case["alertname"])

    for alert in sorted(alerts):
        if alert not in fires:
            problems.append(f"alert {alert} has no promtool test case in which it fires")
        if alert not in silent:
            problems.append(f"alert {alert} has no promtool test case in which it stays silent")
    for unknown in sorted((fires | silent) - alerts):
        problems.append(f"promtool tests name alert {unknown}, which no rule file defines")
    return problems, f"{len(alerts)} alerts, each tested firing and silent"


def check_prometheus_copy(output):
    problems = []
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())

    for job in config.get("scrape_configs", []):
        discovery = job.pop("kubernetes_sd_configs", None)
        if discovery is None:
            continue
        for entry in discovery:
            unknown = set(entry) - KUBERNETES_SD_KEYS
            if unknown:
                problems.append(f"job {job['job_name']}: unknown kubernetes_sd_configs keys {sorted(unknown)}")
            if entry.get("role") not in KUBERNETES_SD_ROLES:
                problems.append(f"job {job['job_name']}: invalid role {entry.get('role')!r}")
            names = set(entry.get("namespaces", {}).get("names", []))
            if not names:
                problems.append(f"job {job['job_name']}: discovery is not limited to namespaces")
            elif not names <= DISCOVERABLE_NAMESPACES:
                problems.append(
                    f"job {job['job_name']}: discovers namespaces {sorted(names - DISCOVERABLE_NAMESPACES)}, "
                    "where Prometheus has no Role"
                )
        job["static_configs"] = [{"targets": [STATIC_TARGET]}]

    kustomization = yaml.safe_load((METRICS_DIR / "kustomization.yaml").read_text())
    mounted = [
        PurePosixPath(entry.split("=")[0] if "=" in entry else entry).name
        for generator in kustomization.get("configMapGenerator", [])
        if generator["name"] == "prometheus-rules"
        for entry in generator.get("files", [])
    ]
    patterns = [PurePosixPath(pattern) for pattern in config.get("rule_files", [])]
    for name in mounted:
        if not any(fnmatch.fnmatch(f"/etc/prometheus/rules/{name}", str(pattern)) for pattern in patterns):
            problems.append(f"rule file {name} is mounted but matches no rule_files pattern {config.get('rule_files')}")
    for name in sorted(set(load_rule_files()) - set(mounted)):
        problems.append(f"rules/{name} is not in the prometheus-rules ConfigMap, so Prometheus never loads it")

    with open(output, "w") as stream:
        yaml.safe_dump(config, stream, sort_keys=False)
    return problems, "kubernetes_sd_configs and rule file mounts valid"


def check_alertmanager_copy(output, built):
    problems = []
    text = ALERTMANAGER_CONFIG.read_text()
    config = yaml.safe_load(text)
    documents = load_documents(built)

    secret_files = set()
    for workload in workloads(documents):
        if workload["metadata"]["name"] != "alertmanager":
            continue
        spec = pod_spec(workload)
        secret_volumes = {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] in secret_volumes:
                    secret_files.add((mount["mountPath"].rstrip("/"), secret_volumes[mount["name"]]))

    examples = {
        doc["metadata"]["name"]: set(doc.get("stringData", {}))
        for doc in load_documents(repository_root() / "monitoring" / "base" / "secrets.example.yaml")
        if doc.get("kind") == "Secret"
    }

    for receiver in config.get("receivers", []):
        for webhook in receiver.get("webhook_configs", []):
            if "url" in webhook:
                problems.append(f"receiver {receiver['name']}: inline webhook url; use url_file and a Secret")
            path = webhook.pop("url_file", None)
            if path is None:
                continue
            directory, key = str(PurePosixPath(path).parent), PurePosixPath(path).name
            matches = [secret for mount, secret in secret_files if mount == directory]
            if not matches:
                problems.append(f"receiver {receiver['name']}: url_file {path} is not in a mounted Secret")
            elif not any(key in examples.get(secret, set()) for secret in matches):
                problems.append(f"receiver {receiver['name']}: Secret {matches[0]} has no key {key} in secrets.example.yaml")
            webhook["url"] = PLACEHOLDER_WEBHOOK_URL

    with open(output, "w") as stream:
        yaml.safe_dump(config, stream, sort_keys=False)
    return problems, "webhook url_file points into a mounted Secret"


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "alert-tests" and len(argv) == 2:
        problems, summary = check_alert_tests()
    elif command == "prometheus-copy" and len(argv) == 3:
        problems, summary = check_prometheus_copy(argv[2])
    elif command == "alertmanager-copy" and len(argv) == 4:
        problems, summary = check_alertmanager_copy(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2

    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
