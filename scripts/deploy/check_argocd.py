#!/usr/bin/env python3
"""Check the Argo CD projects and Applications under argocd/.

Usage: check_argocd.py KUBECTL

For each environment's bootstrap (argocd/dev, argocd/prod) and the child
Applications its root creates, the check requires that:
  - each Application belongs to a project defined in argocd/projects;
  - its repoURL is one of the project's sourceRepos and its destination one of
    the project's destinations;
  - its source path exists and builds with `KUBECTL kustomize`, and every kind
    the build produces is allowed by the project's resource whitelists;
  - dev Applications sync automatically with prune and selfHeal, and prod
    Applications have no automated sync.

Prints a one-line summary, or the problems on stderr and exits 1.
"""

import subprocess
import sys

import yaml

from manifests import repository_root

ENVIRONMENTS = ("dev", "prod")
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def kustomize(kubectl, path):
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def group_of(api_version):
    return api_version.split("/")[0] if "/" in api_version else ""


def whitelisted(entries, group, kind):
    return any(entry.get("group") in (group, "*") and entry.get("kind") in (kind, "*") for entry in entries)


def check_application(app, projects, kubectl, environment, problems):
    root = repository_root()
    name = app["metadata"]["name"]
    spec = app["spec"]
    project = projects.get(spec.get("project"))
    if project is None:
        problems.append(f"Application {name}: project {spec.get('project')!r} is not defined in argocd/projects")
        return []

    source = spec["source"]
    if source["repoURL"] not in project["spec"].get("sourceRepos", []):
        problems.append(f"Application {name}: repoURL {source['repoURL']} is not in project {spec['project']}'s sourceRepos")
    destination = spec["destination"]
    allowed_destinations = project["spec"].get("destinations", [])
    if not any(
        d.get("server") == destination.get("server") and d.get("namespace") in (destination.get("namespace"), "*")
        for d in allowed_destinations
    ):
        problems.append(f"Application {name}: destination {destination} is not allowed by project {spec['project']}")

    automated = spec.get("syncPolicy", {}).get("automated")
    if environment == "dev":
        if not automated or automated.get("prune") is not True or automated.get("selfHeal") is not True:
            problems.append(f"Application {name}: dev must sync automatically with prune and selfHeal")
    elif automated is not None:
        problems.append(f"Application {name}: prod must be synced by hand, but syncPolicy.automated is set")

    path = root / source["path"]
    if not (path / "kustomization.yaml").exists():
        problems.append(f"Application {name}: path {source['path']} has no kustomization.yaml")
        return []
    try:
        built = kustomize(kubectl, path)
    except RuntimeError as error:
        problems.append(f"Application {name}: {error}")
        return []

    for doc in built:
        group = group_of(doc["apiVersion"])
        kind = doc["kind"]
        if kind in CLUSTER_SCOPED_KINDS:
            entries = project["spec"].get("clusterResourceWhitelist", [])
        else:
            entries = project["spec"].get("namespaceResourceWhitelist", [])
            namespace = doc["metadata"].get("namespace", destination.get("namespace"))
            if not any(d.get("namespace") in (namespace, "*") for d in allowed_destinations):
                problems.append(f"Application {name}: {kind} {doc['metadata']['name']} goes to namespace {namespace}, which project {spec['project']} does not allow")
        if not whitelisted(entries, group, kind):
            problems.append(f"Application {name}: builds {group or 'core'}/{kind}, which project {spec['project']} does not allow")
    return [doc for doc in built if doc.get("kind") == "Application"]


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    kubectl = argv[1]
    root = repository_root()
    problems = []
    checked = 0

    for environment in ENVIRONMENTS:
        try:
            bootstrap = kustomize(kubectl, root / "argocd" / environment)
        except RuntimeError as error:
            problems.append(str(error))
            continue
        projects = {doc["metadata"]["name"]: doc for doc in bootstrap if doc["kind"] == "AppProject"}
        pending = [doc for doc in bootstrap if doc["kind"] == "Application"]
        if len(pending) != 1:
            problems.append(f"argocd/{environment}: expected one root Application, found {len(pending)}")
        # Walk the app-of-apps tree: a root's build yields its child Applications.
        while pending:
            app = pending.pop()
            checked += 1
            pending.extend(check_application(app, projects, kubectl, environment, problems))

    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"{checked} Applications in {len(ENVIRONMENTS)} environments match their projects")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
