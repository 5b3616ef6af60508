#!/usr/bin/env python3
"""Prove that each check of scripts/validate-deploy.sh can fail.

For every mutation below, the script copies the deployment files into a
temporary directory, breaks one file there, runs the check that should catch
it, and requires that the check fails. The repository itself is never
changed. Run it after changing a check:

    scripts/deploy/mutation_test.py            # every mutation
    scripts/deploy/mutation_test.py amtool     # the mutations of some checks

It reuses the tools that scripts/validate-deploy.sh installed, so run that
once first. Exits 1 if a broken file passes its check.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COPIED = ["k8s", "monitoring", "argocd", ".github", "scripts", "Dockerfile", ".dockerignore", "Makefile"]
TOOLS_DIR = os.environ.get("LINTAS_DEPLOY_TOOLS_DIR", str(REPO_ROOT / "target" / "deploy-tools"))


@dataclass
class Mutation:
    check: str
    description: str
    path: str
    old: str  # Text to replace. Empty creates the file with `new`.
    new: str


MUTATIONS = [
    Mutation("kustomize", "base lists a missing file", "k8s/base/kustomization.yaml", "  - ingress.yaml\n", "  - ingres.yaml\n"),
    Mutation("schemas", "misspelt probe field", "k8s/base/gateway.yaml", "          readinessProbe:", "          readinesProbe:"),
    Mutation("schemas", "port number as a string", "k8s/base/user-svc.yaml", "containerPort: 9464", 'containerPort: "9464"'),
    Mutation("schemas", "unknown apiVersion", "k8s/base/gateway.yaml", "apiVersion: autoscaling/v2", "apiVersion: autoscaling/v3"),
    Mutation("schemas", "misspelt Certificate field", "k8s/overlays/prod/certificates.yaml", "  renewBefore: 720h\n", "  renewBefor: 720h\n"),
    Mutation("schemas", "Certificate names a missing Issuer", "k8s/overlays/prod/certificates.yaml", "    name: lintas-internal-ca\n---\n# The order", "    name: lintas-ca\n---\n# The order"),
    Mutation("security", "TLS Secret of no Certificate", "k8s/overlays/prod/tls.yaml", "secretName: user-svc-tls", "secretName: user-svc-certs"),
    Mutation("security", "writable root filesystem", "k8s/base/order-svc.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"),
    Mutation(
        "security",
        "container may run as root",
        "monitoring/base/grafana/grafana.yaml",
        "          securityContext:\n            runAsNonRoot: true\n",
        "          securityContext:\n            runAsNonRoot: false\n",
    ),
    Mutation("security", "authentication switched off", "k8s/base/kustomization.yaml", "      - JWT_AUDIENCE=lintas\n", "      - JWT_AUDIENCE=lintas\n      - AUTH_DISABLED=on\n"),
    Mutation(
        "security",
        "JWKS fetched over plain HTTP",
        "k8s/overlays/prod/kustomization.yaml",
        "JWT_JWKS_URL=https://",
        "JWT_JWKS_URL=http://",
    ),
    Mutation("security", "no token issuer", "k8s/base/kustomization.yaml", "      - JWT_ISSUER=https://login.example.com/\n", ""),
    Mutation("security", "capabilities kept", "monitoring/base/logging/loki.yaml", 'drop: ["ALL"]', 'drop: ["NET_RAW"]'),
    Mutation(
        "security",
        "no default deny in lintas",
        "k8s/base/network-policies.yaml",
        "  podSelector: {}\n  policyTypes: [\"Ingress\", \"Egress\"]\n",
        "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: nothing\n  policyTypes: [\"Ingress\", \"Egress\"]\n",
    ),
    Mutation(
        "security",
        "a workload no policy selects",
        "monitoring/base/metrics/alertmanager.yaml",
        "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: alertmanager\n",
        "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: alertmanagr\n",
    ),
    Mutation("security", "Ingress exposes /metrics", "k8s/overlays/dev/ingress-host.yaml", "          - path: /graphql", "          - path: /metrics"),
    Mutation(
        "security",
        "second Ingress to Grafana",
        "monitoring/base/grafana/grafana.yaml",
        "---\napiVersion: v1\nkind: Service\n",
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: grafana\n  namespace: lintas-observability\n"
        "spec:\n  rules:\n    - http:\n        paths:\n          - path: /\n            pathType: Prefix\n"
        "            backend:\n              service:\n                name: grafana\n                port:\n"
        "                  number: 3000\n---\napiVersion: v1\nkind: Service\n",
    ),
    Mutation("security", "image tag latest", "monitoring/base/tracing/jaeger.yaml", "jaegertracing/jaeger:2.8.0", "jaegertracing/jaeger:latest"),
    Mutation("security", "preStop sleep longer than the grace period allows", "k8s/base/gateway.yaml", "                seconds: 5", "                seconds: 25"),
    Mutation(
        "network-flows",
        "order-svc cannot reach user-svc",
        "k8s/base/network-policies.yaml",
        "  name: order-svc-egress-users\n  namespace: lintas\nspec:\n  podSelector:\n    matchLabels:\n"
        "      app.kubernetes.io/name: order-svc\n  policyTypes: [\"Egress\"]\n  egress:\n    - to:\n"
        "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: user-svc\n"
        "      ports:\n        - protocol: TCP\n          port: 50051\n",
        "  name: order-svc-egress-users\n  namespace: lintas\nspec:\n  podSelector:\n    matchLabels:\n"
        "      app.kubernetes.io/name: order-svc\n  policyTypes: [\"Egress\"]\n  egress:\n    - to:\n"
        "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: user-svc\n"
        "      ports:\n        - protocol: TCP\n          port: 50053\n",
    ),
    Mutation(
        "network-flows",
        "every lintas pod may reach Grafana",
        "monitoring/base/grafana/grafana.yaml",
        "  ingress:\n    - from:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: prometheus\n"
        "      ports:\n        - protocol: TCP\n          port: 3000\n",
        "  ingress:\n    - from:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: prometheus\n"
        "        - namespaceSelector: {}\n      ports:\n        - protocol: TCP\n          port: 3000\n",
    ),
    Mutation(
        "network-flows",
        "gateway may reach any port of Grafana",
        "k8s/base/network-policies.yaml",
        "  name: gateway-egress-backends\n  namespace: lintas\nspec:\n  podSelector:\n    matchLabels:\n"
        "      app.kubernetes.io/name: gateway\n  policyTypes: [\"Egress\"]\n  egress:\n",
        "  name: gateway-egress-backends\n  namespace: lintas\nspec:\n  podSelector:\n    matchLabels:\n"
        "      app.kubernetes.io/name: gateway\n  policyTypes: [\"Egress\"]\n  egress:\n    - to:\n"
        "        - namespaceSelector: {}\n",
    ),
    Mutation(
        "secrets",
        "real Secret outside an example file",
        "k8s/base/leaked-secret.yaml",
        "",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leaked\n  namespace: lintas\nstringData:\n  password: hunter2\n",
    ),
    Mutation("secrets", "real value in an example file", "k8s/base/secrets.example.yaml", "postgres://users:CHANGE_ME@", "postgres://users:s3cr3t@"),
    Mutation(
        "argocd",
        "prod syncs automatically",
        "argocd/prod/apps/platform.yaml",
        "  syncPolicy:\n    syncOptions:",
        "  syncPolicy:\n    automated:\n      prune: true\n    syncOptions:",
    ),
    Mutation("argocd", "project no longer allows DaemonSets", "argocd/projects/projects.yaml", "    - group: apps\n      kind: DaemonSet\n", ""),
    Mutation("argocd", "repository outside the project", "argocd/dev/apps/platform.yaml", "https://github.com/lintas-dev/lintas.git", "https://github.com/someone-else/lintas.git"),
    Mutation("promtool-config", "invalid relabel action", "monitoring/base/metrics/prometheus.yml", "        action: keep\n", "        action: keepp\n"),
    Mutation("promtool-config", "discovery outside the Lintas namespaces", "monitoring/base/metrics/prometheus.yml", "names: [lintas-observability]", "names: [kube-system]"),
    Mutation("promtool-rules", "PromQL syntax error", "monitoring/base/metrics/rules/lintas-alerts.rules.yaml", 'expr: up{job=~"lintas-gateway|lintas-services"} == 0', 'expr: up{job=~"lintas-gateway|lintas-services"} =='),
    Mutation("promtool-tests", "error threshold too high", "monitoring/base/metrics/rules/lintas-alerts.rules.yaml", "app:http_server_requests:error_ratio_rate5m > 0.05", "app:http_server_requests:error_ratio_rate5m > 0.5"),
    Mutation(
        "alert-coverage",
        "alert without a test",
        "monitoring/base/metrics/rules/lintas-alerts.rules.yaml",
        "  - name: lintas-cache.alerts\n    rules:\n",
        "  - name: lintas-cache.alerts\n    rules:\n      - alert: LintasUntested\n        expr: vector(1)\n",
    ),
    Mutation("amtool", "route to an undefined receiver", "monitoring/base/metrics/alertmanager.yml", "      receiver: oncall-webhook\n      group_wait: 10s", "      receiver: pager\n      group_wait: 10s"),
    Mutation("amtool", "critical alerts no longer page", "monitoring/base/metrics/alertmanager.yml", "['severity=\"critical\"']", "['severity=\"page\"']"),
    Mutation("amtool", "webhook URL inline", "monitoring/base/metrics/alertmanager.yml", "url_file: /etc/alertmanager/secrets/url", "url: https://hooks.example.com/token"),
    Mutation("grafana", "Jaeger links logs to a missing data source", "monitoring/base/grafana/datasources.yaml", "        datasourceUid: loki\n", "        datasourceUid: logs\n"),
    Mutation("grafana", "derived field regex misses the trace id", "monitoring/base/grafana/datasources.yaml", """'"trace_id":"(\\w+)"'""", """'"traceId":"(\\w+)"'"""),
    Mutation("grafana", "dashboard names an unknown data source", "monitoring/base/grafana/dashboards/lintas-cache.json", '"uid": "prometheus"', '"uid": "prom"'),
    Mutation("dashboards", "dashboard JSON edited by hand", "monitoring/base/grafana/dashboards/lintas-business.json", '"title": "Lintas / Business', '"title": "Business'),
    Mutation("telemetry", "trace_id as a Loki label", "monitoring/base/logging/config.alloy", "    values = { level = \"\" }", "    values = { level = \"\", trace_id = \"\" }"),
    Mutation("telemetry", "unbalanced Alloy block", "monitoring/base/logging/config.alloy", 'loki.write "loki" {', 'loki.write "loki" {{'),
    Mutation("telemetry", "Alloy forwards to an undefined component", "monitoring/base/logging/config.alloy", "forward_to = [loki.write.loki.receiver]", "forward_to = [loki.write.default.receiver]"),
    Mutation("telemetry", "Loki keeps 30 days", "monitoring/base/logging/loki-config.yaml", "retention_period: 336h", "retention_period: 720h"),
    Mutation("telemetry", "Jaeger pipeline uses an undefined processor", "monitoring/base/tracing/jaeger-config.yaml", "processors: [batch]", "processors: [batch, memory_limiter]"),
    Mutation("sampling", "prod SDK samples 50%", "k8s/overlays/prod/kustomization.yaml", "- OTEL_TRACES_SAMPLER_ARG=0.1", "- OTEL_TRACES_SAMPLER_ARG=0.5"),
    Mutation("sampling", "dev Jaeger strategy differs", "monitoring/overlays/dev/sampling.json", '"param": 1.0', '"param": 0.5'),
    Mutation("actionlint", "job needs an unknown job", ".github/workflows/images.yml", "    needs: build\n", "    needs: bild\n"),
    Mutation(
        "actionlint",
        "untrusted input in a script",
        ".github/workflows/ci.yml",
        "        run: cargo fmt --all --check",
        '        run: echo "${{ github.event.pull_request.title }}"',
    ),
    Mutation("hadolint", "unpinned apt-get install", "Dockerfile", "ARG CARGO_CHEF_VERSION\n", "ARG CARGO_CHEF_VERSION\nRUN apt-get update && apt-get install -y curl\n"),
    Mutation("shellcheck", "unquoted variable", "scripts/deploy/dev-secrets.sh", '"$KUBECTL" get secret --namespace "$1" "$2" >/dev/null', '$KUBECTL get secret --namespace $1 $2 >/dev/null'),
]


def copy_tree(destination):
    for name in COPIED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name)
        else:
            shutil.copy2(source, destination / name)


def apply(mutation, root):
    path = root / mutation.path
    if not mutation.old:
        path.write_text(mutation.new)
        return
    text = path.read_text()
    if mutation.old not in text:
        raise SystemExit(f"mutation {mutation.description!r}: text not found in {mutation.path}; update mutation_test.py")
    path.write_text(text.replace(mutation.old, mutation.new, 1))


def first_reported_problem(stderr):
    """Return the first line the tool reported after the FAIL line, or the FAIL line itself."""
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("FAIL"):
            details = [detail.strip() for detail in lines[index + 1 :] if detail.strip()]
            return details[0] if details else line[6:].strip()
    return ""


def main(argv):
    selected = set(argv[1:])
    mutations = [m for m in MUTATIONS if not selected or m.check in selected]
    environment = dict(os.environ, LINTAS_DEPLOY_TOOLS_DIR=TOOLS_DIR)
    missed = []
    started = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="lintas-mutation-") as temporary:
        pristine = Path(temporary) / "pristine"
        pristine.mkdir()
        copy_tree(pristine)
        for index, mutation in enumerate(mutations):
            work = Path(temporary) / f"mutation-{index}"
            shutil.copytree(pristine, work, symlinks=True)
            apply(mutation, work)
            result = subprocess.run(
                ["scripts/validate-deploy.sh", mutation.check],
                cwd=work,
                env=environment,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            caught = result.returncode != 0 and f"FAIL  {mutation.check}" in result.stderr
            if caught:
                print(f"caught  {mutation.check:<16} {mutation.description}")
                print(f"        {first_reported_problem(result.stderr)[:150]}")
            else:
                print(f"MISSED  {mutation.check:<16} {mutation.description} (exit {result.returncode})")
                missed.append(mutation)
            shutil.rmtree(work)

    checks = sorted({m.check for m in mutations})
    print(f"{len(mutations) - len(missed)} of {len(mutations)} mutations caught, covering {len(checks)} checks, "
          f"in {time.monotonic() - started:.0f}s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
