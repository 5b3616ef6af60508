#!/usr/bin/env python3
"""Check the security and consistency rules of one environment's built manifests.

Usage: check_manifests.py BUILT.yaml [BUILT.yaml ...]

Pass the `kubectl kustomize` output of an environment's platform overlay and
observability overlay together, so references across the two resolve. Prints
a one-line summary and exits 0 when every rule holds. Otherwise it prints
each problem on stderr and exits 1.
"""

import sys
from pathlib import PurePosixPath

from manifests import (
    CheckFailed,
    all_containers,
    describe,
    load_documents,
    pod_labels,
    pod_spec,
    raise_if_problems,
    repository_root,
    selector_matches,
    workloads,
)

NAMESPACES = {"lintas", "lintas-observability"}
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
# The Lintas binaries, which must shut down gracefully behind a preStop sleep.
LINTAS_DEPLOYMENTS = {"gateway", "user-svc", "order-svc"}
# Paths the Ingress may expose. /metrics, /healthz and /readyz stay internal.
PUBLIC_PATHS = {"/api", "/graphql"}
READ_ONLY_VERBS = {"get", "list", "watch"}
# Folders that hold manifests, and so the *.example.yaml files.
DEPLOY_FOLDERS = ("k8s", "monitoring", "argocd")


def check_container_security(documents):
    """Check that every container runs as non-root, read-only, without privileges or capabilities."""
    problems = []
    for workload in workloads(documents):
        spec = pod_spec(workload)
        pod_context = spec.get("securityContext", {})
        name = describe(workload)

        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(field):
                problems.append(f"{name}: {field} is true")
        for volume in spec.get("volumes", []):
            if "hostPath" in volume:
                problems.append(f"{name}: volume {volume['name']} mounts a host path")

        for container in all_containers(spec):
            where = f"{name} container {container['name']}"
            context = container.get("securityContext", {})

            def effective(field, context=context):
                return context.get(field, pod_context.get(field))

            if effective("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if effective("runAsUser") == 0:
                problems.append(f"{where}: runAsUser is 0 (root)")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if context.get("privileged"):
                problems.append(f"{where}: privileged is true")
            capabilities = context.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []):
                problems.append(f"{where}: capabilities.drop does not contain ALL")
            if capabilities.get("add"):
                problems.append(f"{where}: adds capabilities {capabilities['add']}")
            seccomp = effective("seccompProfile") or {}
            if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    return problems


def check_resources_and_probes(documents):
    """Check that every container sets requests and limits and has liveness and readiness probes."""
    problems = []
    for workload in workloads(documents):
        for container in pod_spec(workload).get("containers", []):
            where = f"{describe(workload)} container {container['name']}"
            resources = container.get("resources", {})
            for kind, names in (("requests", ("cpu", "memory")), ("limits", ("cpu", "memory"))):
                for resource in names:
                    if resource not in resources.get(kind, {}):
                        problems.append(f"{where}: resources.{kind}.{resource} is missing")
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    problems.append(f"{where}: {probe} is missing")
    return problems


def check_lintas_probes_and_shutdown(documents):
    """Check the Lintas probes (/healthz and /readyz, native gRPC) and the shutdown budget."""
    problems = []
    for workload in workloads(documents):
        name = workload["metadata"]["name"]
        if workload["kind"] != "Deployment" or name not in LINTAS_DEPLOYMENTS:
            continue
        spec = pod_spec(workload)
        container = spec["containers"][0]
        where = describe(workload)

        if name == "gateway":
            liveness_path = container.get("livenessProbe", {}).get("httpGet", {}).get("path")
            readiness_path = container.get("readinessProbe", {}).get("httpGet", {}).get("path")
            if liveness_path != "/healthz":
                problems.append(f"{where}: livenessProbe must be httpGet /healthz, found {liveness_path!r}")
            if readiness_path != "/readyz":
                problems.append(f"{where}: readinessProbe must be httpGet /readyz, found {readiness_path!r}")
        else:
            for probe in ("livenessProbe", "readinessProbe"):
                if "grpc" not in container.get(probe, {}):
                    problems.append(f"{where}: {probe} must be a native grpc probe")

        sleep_seconds = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
        grace_seconds = spec.get("terminationGracePeriodSeconds")
        if sleep_seconds is None:
            problems.append(f"{where}: lifecycle.preStop.sleep is missing")
        elif grace_seconds is None or grace_seconds < sleep_seconds + 10:
            problems.append(
                f"{where}: terminationGracePeriodSeconds ({grace_seconds}) must exceed the preStop sleep "
                f"({sleep_seconds} s) by at least 10 s of drain time"
            )
        if "replicas" in workload["spec"]:
            problems.append(f"{where}: sets replicas although a HorizontalPodAutoscaler owns the count")
    return problems


def check_images(documents):
    """Check that every image has an explicit tag or digest other than latest."""
    problems = []
    for workload in workloads(documents):
        for container in all_containers(pod_spec(workload)):
            image = container["image"]
            if "@sha256:" in image:
                continue
            last_part = image.rsplit("/", 1)[-1]
            tag = last_part.split(":", 1)[1] if ":" in last_part else ""
            if not tag or tag == "latest":
                problems.append(f"{describe(workload)} container {container['name']}: image {image} has no pinned tag")
    return problems


def check_network_policy_coverage(documents):
    """Check for a default deny per namespace and a policy of its own per workload."""
    problems = []
    policies = [doc for doc in documents if doc.get("kind") == "NetworkPolicy"]
    namespaces_with_workloads = {w["metadata"]["namespace"] for w in workloads(documents)}

    for namespace in sorted(namespaces_with_workloads):
        has_default_deny = any(
            policy["metadata"]["namespace"] == namespace
            and policy["spec"].get("podSelector") == {}
            and set(policy["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not policy["spec"].get("ingress")
            and not policy["spec"].get("egress")
            for policy in policies
        )
        if not has_default_deny:
            problems.append(f"namespace {namespace}: no default-deny NetworkPolicy (empty podSelector, no rules)")

    for workload in workloads(documents):
        namespace = workload["metadata"]["namespace"]
        labels = pod_labels(workload)
        selected = [
            policy
            for policy in policies
            if policy["metadata"]["namespace"] == namespace
            and policy["spec"].get("podSelector")
            and selector_matches(policy["spec"]["podSelector"], labels)
        ]
        if not selected:
            problems.append(f"{describe(workload)}: no NetworkPolicy selects its pods specifically")
    return problems


def check_ingress(documents):
    """Check that the one Ingress routes only public paths to the gateway Service."""
    problems = []
    ingresses = [doc for doc in documents if doc.get("kind") == "Ingress"]
    if len(ingresses) != 1:
        names = ", ".join(describe(doc) for doc in ingresses) or "none"
        return [f"expected exactly one Ingress, found {len(ingresses)}: {names}"]

    ingress = ingresses[0]
    services = {
        (doc["metadata"]["namespace"], doc["metadata"]["name"]): doc for doc in documents if doc.get("kind") == "Service"
    }
    namespace = ingress["metadata"]["namespace"]
    backends = []
    if "defaultBackend" in ingress["spec"]:
        backends.append(("(default backend)", ingress["spec"]["defaultBackend"]))
    for rule in ingress["spec"].get("rules", []):
        for path in rule.get("http", {}).get("paths", []):
            backends.append((path.get("path"), path["backend"]))
            if path.get("path") not in PUBLIC_PATHS:
                problems.append(f"{describe(ingress)}: path {path.get('path')!r} is not one of {sorted(PUBLIC_PATHS)}")

    for path, backend in backends:
        service_ref = backend.get("service", {})
        if service_ref.get("name") != "gateway":
            problems.append(f"{describe(ingress)}: path {path} routes to {service_ref.get('name')!r}, not the gateway")
            continue
        service = services.get((namespace, "gateway"))
        if service is None:
            problems.append(f"{describe(ingress)}: Service {namespace}/gateway does not exist")
            continue
        port = service_ref.get("port", {})
        port_names = {p.get("name") for p in service["spec"]["ports"]}
        port_numbers = {p["port"] for p in service["spec"]["ports"]}
        if port.get("name") not in port_names and port.get("number") not in port_numbers:
            problems.append(f"{describe(ingress)}: path {path} names port {port} that Service gateway lacks")
    return problems


def check_no_secrets(documents):
    """Check that the build contains no Secret, because Secrets are created outside Git."""
    return [f"{describe(doc)}: Secrets must not be built from the repository" for doc in documents if doc.get("kind") == "Secret"]


def check_namespaces(documents):
    """Check that every namespaced resource names lintas or lintas-observability."""
    problems = []
    for doc in documents:
        if doc.get("kind") in CLUSTER_SCOPED_KINDS:
            continue
        namespace = doc.get("metadata", {}).get("namespace")
        if namespace not in NAMESPACES:
            problems.append(f"{describe(doc)}: namespace {namespace!r} is not one of {sorted(NAMESPACES)}")
    return problems


def check_service_accounts_and_rbac(documents):
    """Check that pods mount an API token only when a RoleBinding grants their account read-only rights."""
    problems = []
    bound_accounts = set()
    roles = {}
    for doc in documents:
        kind = doc.get("kind")
        if kind in ("ClusterRole", "ClusterRoleBinding"):
            problems.append(f"{describe(doc)}: cluster-wide RBAC is not needed; use a Role in each namespace")
        if kind == "Role":
            roles[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc
        if kind == "RoleBinding":
            for subject in doc.get("subjects", []):
                if subject.get("kind") == "ServiceAccount":
                    bound_accounts.add((subject.get("namespace"), subject["name"]))

    for (namespace, name), role in roles.items():
        for rule in role.get("rules", []):
            verbs = set(rule.get("verbs", []))
            resources = set(rule.get("resources", []))
            if not verbs <= READ_ONLY_VERBS:
                problems.append(f"Role {namespace}/{name}: verbs {sorted(verbs - READ_ONLY_VERBS)} are not read-only")
            if "*" in resources or "*" in set(rule.get("apiGroups", [])):
                problems.append(f"Role {namespace}/{name}: uses a wildcard")
            if "secrets" in resources:
                problems.append(f"Role {namespace}/{name}: grants access to Secrets")

    for workload in workloads(documents):
        spec = pod_spec(workload)
        namespace = workload["metadata"]["namespace"]
        account = spec.get("serviceAccountName", "default")
        automount = spec.get("automountServiceAccountToken")
        if account == "default":
            problems.append(f"{describe(workload)}: runs as the default ServiceAccount")
        if automount is None:
            problems.append(f"{describe(workload)}: automountServiceAccountToken is not set explicitly")
        elif automount and (namespace, account) not in bound_accounts:
            problems.append(f"{describe(workload)}: mounts an API token but no RoleBinding names ServiceAccount {account}")
    return problems


def check_references(documents):
    """Check that Services, autoscalers, budgets and ConfigMap references point at existing objects."""
    problems = []
    by_kind = {}
    for doc in documents:
        by_kind.setdefault(doc.get("kind"), []).append(doc)
    workload_list = workloads(documents)
    config_maps = {(doc["metadata"]["namespace"], doc["metadata"]["name"]) for doc in by_kind.get("ConfigMap", [])}
    service_accounts = {
        (doc["metadata"]["namespace"], doc["metadata"]["name"]) for doc in by_kind.get("ServiceAccount", [])
    }

    for service in by_kind.get("Service", []):
        namespace = service["metadata"]["namespace"]
        selected = [
            w
            for w in workload_list
            if w["metadata"]["namespace"] == namespace
            and selector_matches({"matchLabels": service["spec"].get("selector", {})}, pod_labels(w))
        ]
        if not selected:
            problems.append(f"{describe(service)}: selector matches no workload")
            continue
        port_names = {
            port.get("name") for w in selected for c in pod_spec(w)["containers"] for port in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str) and target not in port_names:
                problems.append(f"{describe(service)}: targetPort {target} is not a container port name")

    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        if not any(
            w["kind"] == ref["kind"]
            and w["metadata"]["name"] == ref["name"]
            and w["metadata"]["namespace"] == hpa["metadata"]["namespace"]
            for w in workload_list
        ):
            problems.append(f"{describe(hpa)}: scale target {ref['kind']} {ref['name']} does not exist")

    for budget in by_kind.get("PodDisruptionBudget", []):
        namespace = budget["metadata"]["namespace"]
        if not any(
            w["metadata"]["namespace"] == namespace and selector_matches(budget["spec"]["selector"], pod_labels(w))
            for w in workload_list
        ):
            problems.append(f"{describe(budget)}: selector matches no workload")

    for workload in workload_list:
        namespace = workload["metadata"]["namespace"]
        spec = pod_spec(workload)
        account = spec.get("serviceAccountName")
        if account and (namespace, account) not in service_accounts:
            problems.append(f"{describe(workload)}: ServiceAccount {account} does not exist")
        referenced = [v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v]
        for container in all_containers(spec):
            referenced += [e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e]
            referenced += [
                e["valueFrom"]["configMapKeyRef"]["name"]
                for e in container.get("env", [])
                if "configMapKeyRef" in e.get("valueFrom", {})
            ]
        for name in referenced:
            if (namespace, name) not in config_maps:
                problems.append(f"{describe(workload)}: ConfigMap {name} does not exist")
    return problems


def check_secret_references_documented(documents):
    """Check that every Secret name and key a pod reads is documented in a *.example.yaml file.

    A Secret that a cert-manager Certificate of the build writes counts as
    documented, with the keys that cert-manager stores in it.
    """
    documented = {
        (doc["metadata"]["namespace"], doc["spec"]["secretName"]): {"tls.crt", "tls.key", "ca.crt"}
        for doc in documents
        if doc.get("kind") == "Certificate" and doc.get("apiVersion", "").startswith("cert-manager.io/")
    }
    root = repository_root()
    examples = [path for folder in DEPLOY_FOLDERS for path in sorted((root / folder).glob("**/*.example.yaml"))]
    for example in examples:
        for doc in load_documents(example):
            if doc.get("kind") == "Secret":
                keys = set((doc.get("stringData") or {}).keys()) | set((doc.get("data") or {}).keys())
                documented[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = keys

    problems = []
    for workload in workloads(documents):
        namespace = workload["metadata"]["namespace"]
        spec = pod_spec(workload)
        references = [(v["secret"]["secretName"], None) for v in spec.get("volumes", []) if "secret" in v]
        for container in all_containers(spec):
            references += [(e["secretRef"]["name"], None) for e in container.get("envFrom", []) if "secretRef" in e]
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    references.append((ref["name"], ref["key"]))
        for name, key in references:
            keys = documented.get((namespace, name))
            if keys is None:
                problems.append(f"{describe(workload)}: Secret {namespace}/{name} is not in any *.example.yaml")
            elif key is not None and key not in keys:
                problems.append(f"{describe(workload)}: key {key} of Secret {name} is not in its *.example.yaml")
    return problems


def check_gateway_authenticates(documents):
    """Check that the gateway gets an issuer, an audience and a key source, and never AUTH_DISABLED.

    A key is a JWKS URL or file in its ConfigMaps, or a Secret it reads,
    which must document JWT_HS256_SECRET.
    """
    config_maps = {
        (doc["metadata"]["namespace"], doc["metadata"]["name"]): doc.get("data") or {}
        for doc in documents
        if doc.get("kind") == "ConfigMap"
    }
    problems = []
    gateways = [w for w in workloads(documents) if w["metadata"]["name"] == "gateway"]
    if not gateways:
        return ["no gateway Deployment found"]
    for workload in gateways:
        namespace = workload["metadata"]["namespace"]
        settings = {}
        reads_secret = False
        for container in all_containers(pod_spec(workload)):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    settings.update(config_maps.get((namespace, source["configMapRef"]["name"]), {}))
                reads_secret = reads_secret or "secretRef" in source
            for env in container.get("env", []):
                if "value" in env:
                    settings[env["name"]] = env["value"]
        where = describe(workload)
        if str(settings.get("AUTH_DISABLED", "off")).lower() not in ("off", "false", "0", "no"):
            problems.append(f"{where}: AUTH_DISABLED is set; no deployment runs without authentication")
        for name in ("JWT_ISSUER", "JWT_AUDIENCE"):
            if not settings.get(name):
                problems.append(f"{where}: {name} is not set")
        if not (settings.get("JWT_JWKS_URL") or settings.get("JWT_JWKS_FILE") or reads_secret):
            problems.append(f"{where}: no JWT key source (JWT_JWKS_URL, JWT_JWKS_FILE or a Secret with JWT_HS256_SECRET)")
        url = settings.get("JWT_JWKS_URL", "")
        if url and not url.startswith("https://"):
            problems.append(f"{where}: JWT_JWKS_URL must be https, not {url}")
    return problems


CHECKS = [
    check_container_security,
    check_resources_and_probes,
    check_lintas_probes_and_shutdown,
    check_images,
    check_network_policy_coverage,
    check_ingress,
    check_no_secrets,
    check_namespaces,
    check_service_accounts_and_rbac,
    check_references,
    check_secret_references_documented,
    check_gateway_authenticates,
]


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    documents = load_documents(*argv[1:])
    problems = []
    for check in CHECKS:
        problems.extend(check(documents))
    try:
        raise_if_problems(problems)
    except CheckFailed as error:
        print(error, file=sys.stderr)
        return 1

    files = ", ".join(PurePosixPath(path).name for path in argv[1:])
    print(f"{len(CHECKS)} rules on {len(workloads(documents))} workloads in {files}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
