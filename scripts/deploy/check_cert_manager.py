#!/usr/bin/env python3
"""Check the cert-manager resources of a built overlay, and set them aside.

Usage: check_cert_manager.py BUILT.yaml REST.yaml

kubernetes-validate has schemas of the built-in kinds only, so this script takes the
cert-manager.io/v1 documents out of BUILT.yaml, validates them against
schemas/cert-manager.yaml (strict: unknown fields fail), and checks their
references: each Certificate's issuerRef names an Issuer in its namespace
or a ClusterIssuer of the build, and each CA Issuer's Secret is written by
a Certificate of the build. Every other document goes to REST.yaml, for
kubernetes-validate. Prints a one-line summary, or the problems on stderr
and exits 1.
"""

import sys
from pathlib import Path

import jsonschema
import yaml

from manifests import describe, load_documents

API_VERSION = "cert-manager.io/v1"
SCHEMAS = Path(__file__).resolve().parent / "schemas" / "cert-manager.yaml"
SCHEMA_OF_KIND = {"Issuer": "issuer", "ClusterIssuer": "issuer", "Certificate": "certificate"}


def validate_schemas(documents, definitions):
    problems = []
    for doc in documents:
        kind = doc.get("kind")
        if kind not in SCHEMA_OF_KIND:
            problems.append(f"{describe(doc)}: no schema for kind {kind} in {SCHEMAS.name}")
            continue
        schema = {"definitions": definitions, "$ref": f"#/definitions/{SCHEMA_OF_KIND[kind]}"}
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(doc), key=lambda error: list(error.absolute_path)):
            location = ".".join(str(part) for part in error.absolute_path) or "(document)"
            problems.append(f"{describe(doc)}: {location}: {error.message}")
    return problems


def check_references(documents):
    issuers = {
        (doc["metadata"].get("namespace"), doc["metadata"]["name"])
        for doc in documents
        if doc.get("kind") == "Issuer"
    }
    cluster_issuers = {doc["metadata"]["name"] for doc in documents if doc.get("kind") == "ClusterIssuer"}
    certificates = [doc for doc in documents if doc.get("kind") == "Certificate"]
    issued_secrets = {(doc["metadata"].get("namespace"), doc["spec"]["secretName"]) for doc in certificates}

    problems = []
    for certificate in certificates:
        reference = certificate["spec"]["issuerRef"]
        kind = reference.get("kind", "Issuer")
        namespace = certificate["metadata"].get("namespace")
        if kind == "Issuer" and (namespace, reference["name"]) not in issuers:
            problems.append(f"{describe(certificate)}: Issuer {namespace}/{reference['name']} is not in the build")
        elif kind == "ClusterIssuer" and reference["name"] not in cluster_issuers:
            problems.append(f"{describe(certificate)}: ClusterIssuer {reference['name']} is not in the build")
        elif kind not in ("Issuer", "ClusterIssuer"):
            problems.append(f"{describe(certificate)}: issuerRef.kind {kind} is neither Issuer nor ClusterIssuer")
    for issuer in documents:
        if issuer.get("kind") != "Issuer" or "ca" not in issuer.get("spec", {}):
            continue
        key = (issuer["metadata"].get("namespace"), issuer["spec"]["ca"]["secretName"])
        if key not in issued_secrets:
            problems.append(f"{describe(issuer)}: CA Secret {key[0]}/{key[1]} is written by no Certificate of the build")
    return problems


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    built, rest = argv[1], argv[2]
    documents = load_documents(built)
    ours = [doc for doc in documents if doc.get("apiVersion", "").startswith("cert-manager.io/")]
    others = [doc for doc in documents if doc not in ours]
    with open(rest, "w") as stream:
        yaml.safe_dump_all(others, stream, sort_keys=False)

    definitions = yaml.safe_load(SCHEMAS.read_text())["definitions"]
    problems = [
        f"{describe(doc)}: apiVersion {doc['apiVersion']} is not {API_VERSION}"
        for doc in ours
        if doc["apiVersion"] != API_VERSION
    ]
    problems += validate_schemas([doc for doc in ours if doc["apiVersion"] == API_VERSION], definitions)
    if not problems:
        problems += check_references(ours)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"{len(ours)} cert-manager resources valid in {Path(built).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
