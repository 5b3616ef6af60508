#!/usr/bin/env python3
"""Check that no real secret value is committed under k8s/, monitoring/, argocd/ or .github/.

A Secret manifest may only live in a file named *.example.yaml, which no
kustomization includes, and every value whose key names a credential must
contain the placeholder CHANGE_ME. No file may contain a PEM private key.
Prints a one-line summary, or the problems on stderr and exits 1.
"""

import re
import sys

import yaml

from manifests import repository_root

FOLDERS = ("k8s", "monitoring", "argocd", ".github")
PLACEHOLDER = "CHANGE_ME"
# Keys whose values are credentials, or URLs that may embed one.
CREDENTIAL_KEY = re.compile(r"password|secret|token|key|url|credential", re.IGNORECASE)
PRIVATE_KEY_MARKER = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def check_file(path, relative):
    problems = []
    text = path.read_text(errors="replace")
    if PRIVATE_KEY_MARKER.search(text):
        problems.append(f"{relative}: contains a PEM private key")
    if path.suffix not in (".yaml", ".yml"):
        return problems, 0

    try:
        documents = [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    except yaml.YAMLError as error:
        return [f"{relative}: invalid YAML: {error}"], 0

    secrets = [doc for doc in documents if doc.get("kind") == "Secret"]
    for secret in secrets:
        name = secret.get("metadata", {}).get("name")
        if not path.name.endswith(".example.yaml"):
            problems.append(f"{relative}: Secret {name} outside a *.example.yaml file")
        if secret.get("data"):
            problems.append(f"{relative}: Secret {name} has base64 data; examples use stringData placeholders")
        for key, value in (secret.get("stringData") or {}).items():
            if CREDENTIAL_KEY.search(key) and PLACEHOLDER not in str(value):
                problems.append(f"{relative}: Secret {name} key {key} holds a value without the placeholder {PLACEHOLDER}")
    return problems, len(secrets)


def main():
    root = repository_root()
    problems = []
    files = 0
    example_secrets = 0
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if not path.is_file():
                continue
            files += 1
            file_problems, secrets = check_file(path, path.relative_to(root))
            problems.extend(file_problems)
            example_secrets += secrets

    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"{files} files scanned, {example_secrets} example Secrets hold placeholders only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
