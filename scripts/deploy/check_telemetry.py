#!/usr/bin/env python3
"""Check the Alloy, Loki and Jaeger configurations, and trace sampling per environment.

Usage:
  check_telemetry.py configs
  check_telemetry.py sampling ENVIRONMENT BUILT.yaml [BUILT.yaml ...]

No Alloy, Loki or Jaeger binary is installable from the package registries
this project uses, so their own config validators cannot run here. These
checks cover what the deployment depends on instead:
  - config.alloy parses as Alloy syntax (blocks, attributes, balanced
    brackets), every component it refers to is defined, and log lines get the
    labels namespace, app, level and log_type (audit or app) only;
  - Loki keeps logs for 14 days and its compactor applies the retention;
  - Jaeger's pipelines use only defined receivers, processors, exporters and
    extensions, and it receives OTLP gRPC on 4317;
  - the binaries' sampling ratio (OTEL_TRACES_SAMPLER_ARG) equals the default
    strategy in Jaeger's sampling.json of the same environment.
Prints a one-line summary, or the problems on stderr and exits 1.
"""

import json
import re
import sys

import yaml

from manifests import load_documents, repository_root

MONITORING = repository_root() / "monitoring"
ALLOY_CONFIG = MONITORING / "base" / "logging" / "config.alloy"
LOKI_CONFIG = MONITORING / "base" / "logging" / "loki-config.yaml"
JAEGER_CONFIG = MONITORING / "base" / "tracing" / "jaeger-config.yaml"

# log_type has two values: "audit" for the gateway's audit lines, "app" otherwise.
ALLOWED_LOG_LABELS = ["namespace", "app", "level", "log_type"]
LOKI_RETENTION = "336h"  # 14 days
EXPECTED_SAMPLING = {"dev": 1.0, "prod": 0.1}

TOKEN_PATTERN = re.compile(
    r"""
    (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<newline>\n)
  | (?P<space>[ \t\r]+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<identifier>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<operator>==|!=|<=|>=|&&|\|\||[{}\[\]().,=+\-*/%<>!:?])
    """,
    re.VERBOSE | re.DOTALL,
)


class AlloySyntaxError(Exception):
    pass


def tokenize_alloy(text):
    """Return (kind, value, line) tokens of Alloy syntax, without comments and spaces."""
    tokens = []
    position = 0
    line = 1
    while position < len(text):
        match = TOKEN_PATTERN.match(text, position)
        if not match:
            raise AlloySyntaxError(f"line {line}: unexpected character {text[position]!r}")
        kind = match.lastgroup
        value = match.group()
        if kind not in ("comment", "space"):
            tokens.append((kind, value, line))
        line += value.count("\n")
        position = match.end()
    tokens.append(("end", "", line))
    return tokens


def parse_alloy(text):
    """Parse Alloy syntax into nested blocks.

    Returns a list of blocks, each a dict with "name" (dotted), "label" (or
    None), "attributes" (name -> list of expression tokens) and "blocks".
    """
    tokens = tokenize_alloy(text)
    position = 0

    def peek(offset=0):
        return tokens[position + offset]

    def skip_newlines():
        nonlocal position
        while peek()[0] == "newline":
            position += 1

    def parse_body(closing):
        nonlocal position
        blocks, attributes = [], {}
        while True:
            skip_newlines()
            kind, value, line = peek()
            if kind == "end" and closing is None:
                return blocks, attributes
            if kind == "operator" and value == "}" and closing == "}":
                position += 1
                return blocks, attributes
            if kind != "identifier":
                raise AlloySyntaxError(f"line {line}: expected a block or attribute name, found {value!r}")

            name_parts = [value]
            position += 1
            if peek()[1] == "=":
                position += 1
                attributes[value] = parse_expression()
                continue
            while peek()[1] == "." and peek(1)[0] == "identifier":
                name_parts.append(peek(1)[1])
                position += 2
            label = None
            if peek()[0] == "string":
                label = json.loads(peek()[1])
                position += 1
            if peek()[1] != "{":
                raise AlloySyntaxError(f"line {peek()[2]}: expected '{{' after block {'.'.join(name_parts)}")
            position += 1
            inner_blocks, inner_attributes = parse_body("}")
            blocks.append(
                {"name": ".".join(name_parts), "label": label, "attributes": inner_attributes, "blocks": inner_blocks}
            )

    def parse_expression():
        """Collect an expression's tokens up to the end of its line, across brackets."""
        nonlocal position
        depth = 0
        collected = []
        while True:
            kind, value, line = peek()
            if kind == "end":
                if depth:
                    raise AlloySyntaxError(f"line {line}: unclosed bracket at end of file")
                return collected
            if kind == "newline" and depth == 0:
                return collected
            if value in ("(", "[", "{"):
                depth += 1
            elif value in (")", "]", "}"):
                if depth == 0:
                    return collected
                depth -= 1
            collected.append((kind, value))
            position += 1

    blocks, _ = parse_body(None)
    return blocks


def dotted_references(expression):
    """Yield the dotted identifiers (a.b.c...) of an expression."""
    parts = []
    for index, (kind, value) in enumerate(expression):
        if kind == "identifier":
            if parts and expression[index - 1][1] == ".":
                parts.append(value)
            else:
                if len(parts) > 1:
                    yield parts
                parts = [value]
        elif value != ".":
            if len(parts) > 1:
                yield parts
            parts = []
    if len(parts) > 1:
        yield parts


def string_values(expression):
    return [json.loads(value) for kind, value in expression if kind == "string"]


def object_keys(expression):
    """Return the keys of an object literal { key = value, ... }."""
    keys = []
    for index, (kind, value) in enumerate(expression[:-1]):
        if kind == "identifier" and expression[index + 1][1] == "=" and expression[index - 1][1] in ("{", ","):
            keys.append(value)
    return keys


def check_alloy(problems):
    try:
        blocks = parse_alloy(ALLOY_CONFIG.read_text())
    except AlloySyntaxError as error:
        problems.append(f"config.alloy: {error}")
        return

    components = {f"{block['name']}.{block['label']}" for block in blocks if block["label"]}
    for block in blocks:
        if block["label"] is None:
            continue
        for attribute, expression in block["attributes"].items():
            for parts in dotted_references(expression):
                if parts[0] not in ("discovery", "loki", "prometheus", "otelcol", "local", "remote"):
                    continue
                if not any(".".join(parts[:length]) in components for length in range(2, len(parts) + 1)):
                    problems.append(
                        f"config.alloy: {block['name']} \"{block['label']}\" {attribute} refers to "
                        f"{'.'.join(parts)}, which no component defines"
                    )

    processes = [block for block in blocks if block["name"] == "loki.process"]
    if not processes:
        problems.append("config.alloy: no loki.process component parses the log lines")
    for process in processes:
        stages = process["blocks"]
        if not any(stage["name"] == "stage.json" for stage in stages):
            problems.append("config.alloy: loki.process has no stage.json for the JSON log lines")
        for stage in stages:
            if stage["name"] in ("stage.labels", "stage.static_labels", "stage.structured_metadata"):
                keys = object_keys(stage["attributes"].get("values", []))
                unexpected = [key for key in keys if key not in ALLOWED_LOG_LABELS]
                if stage["name"] != "stage.structured_metadata" and unexpected:
                    problems.append(f"config.alloy: {stage['name']} adds labels {unexpected}; allowed: {ALLOWED_LOG_LABELS}")
            if stage["name"] == "stage.label_keep":
                kept_labels = string_values(stage["attributes"].get("values", []))
                if kept_labels != ALLOWED_LOG_LABELS:
                    problems.append(f"config.alloy: stage.label_keep keeps {kept_labels}, expected {ALLOWED_LOG_LABELS}")
            if stage["name"] in ("stage.output", "stage.replace", "stage.pack"):
                problems.append(f"config.alloy: {stage['name']} rewrites the log line, which must keep trace_id")
        if not any(stage["name"] == "stage.label_keep" for stage in stages):
            problems.append("config.alloy: loki.process has no stage.label_keep limiting labels to namespace, app, level, log_type")

    for block in blocks:
        if block["name"] == "discovery.relabel":
            for rule in block["blocks"]:
                target = string_values(rule["attributes"].get("target_label", []))
                if target and target[0] not in ALLOWED_LOG_LABELS:
                    problems.append(f"config.alloy: discovery.relabel sets label {target[0]}; allowed: {ALLOWED_LOG_LABELS}")

    urls = [
        value
        for block in blocks
        if block["name"] == "loki.write"
        for endpoint in block["blocks"]
        for value in string_values(endpoint["attributes"].get("url", []))
    ]
    if not urls or not all(re.match(r"^http://loki\.lintas-observability(\.svc[.\w]*)?:3100/loki/api/v1/push$", u) for u in urls):
        problems.append(f"config.alloy: loki.write must push to the loki Service on 3100, found {urls}")


def check_loki(problems):
    config = yaml.safe_load(LOKI_CONFIG.read_text())
    retention = config.get("limits_config", {}).get("retention_period")
    if retention != LOKI_RETENTION:
        problems.append(f"loki-config.yaml: retention_period is {retention!r}, expected {LOKI_RETENTION} (14 days)")
    compactor = config.get("compactor", {})
    if compactor.get("retention_enabled") is not True:
        problems.append("loki-config.yaml: compactor.retention_enabled is not true, so old logs are never deleted")
    if not compactor.get("delete_request_store"):
        problems.append("loki-config.yaml: compactor.delete_request_store must be set when retention is enabled")
    schemas = config.get("schema_config", {}).get("configs", [])
    if not schemas or schemas[-1].get("store") != "tsdb":
        problems.append("loki-config.yaml: the newest schema must use the tsdb index store")


def check_jaeger(problems):
    config = yaml.safe_load(JAEGER_CONFIG.read_text())
    service = config.get("service", {})
    for extension in service.get("extensions", []):
        if extension not in config.get("extensions", {}):
            problems.append(f"jaeger-config.yaml: service.extensions lists {extension}, which is not configured")
    for name, pipeline in service.get("pipelines", {}).items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                if component not in (config.get(section) or {}):
                    problems.append(f"jaeger-config.yaml: pipeline {name} uses {section[:-1]} {component}, which is not configured")
    grpc = ((config.get("receivers") or {}).get("otlp") or {}).get("protocols", {}).get("grpc") or {}
    if not str(grpc.get("endpoint", "")).endswith(":4317"):
        problems.append("jaeger-config.yaml: the otlp receiver must accept gRPC on port 4317")
    sampling_path = config.get("extensions", {}).get("remote_sampling", {}).get("file", {}).get("path")
    if sampling_path != "/etc/jaeger/sampling.json":
        problems.append(f"jaeger-config.yaml: remote_sampling reads {sampling_path}, not the mounted /etc/jaeger/sampling.json")


def check_sampling(environment, documents):
    problems = []
    config_maps = {doc["metadata"]["name"]: doc for doc in documents if doc.get("kind") == "ConfigMap"}
    telemetry = next((cm for name, cm in config_maps.items() if name.startswith("lintas-telemetry")), None)
    jaeger = next((cm for name, cm in config_maps.items() if name.startswith("jaeger-config")), None)
    if telemetry is None or jaeger is None:
        return ["the build lacks the lintas-telemetry or jaeger-config ConfigMap"]

    data = telemetry["data"]
    if data.get("OTEL_TRACES_SAMPLER") != "parentbased_traceidratio":
        problems.append(f"lintas-telemetry: OTEL_TRACES_SAMPLER is {data.get('OTEL_TRACES_SAMPLER')!r}")
    if data.get("DEPLOYMENT_ENVIRONMENT") != environment:
        problems.append(f"lintas-telemetry: DEPLOYMENT_ENVIRONMENT is {data.get('DEPLOYMENT_ENVIRONMENT')!r}, expected {environment}")
    sdk_ratio = float(data.get("OTEL_TRACES_SAMPLER_ARG", "nan"))
    strategy = json.loads(jaeger["data"]["sampling.json"])["default_strategy"]
    if sdk_ratio != EXPECTED_SAMPLING[environment]:
        problems.append(f"{environment}: OTEL_TRACES_SAMPLER_ARG is {sdk_ratio}, expected {EXPECTED_SAMPLING[environment]}")
    if strategy.get("type") != "probabilistic" or strategy.get("param") != sdk_ratio:
        problems.append(f"{environment}: Jaeger's default sampling strategy {strategy} differs from the SDK ratio {sdk_ratio}")
    return problems


def main(argv):
    if len(argv) >= 2 and argv[1] == "configs":
        problems = []
        check_alloy(problems)
        check_loki(problems)
        check_jaeger(problems)
        summary = "config.alloy, loki-config.yaml and jaeger-config.yaml hold the required settings"
    elif len(argv) >= 4 and argv[1] == "sampling" and argv[2] in EXPECTED_SAMPLING:
        problems = check_sampling(argv[2], load_documents(*argv[3:]))
        summary = f"{argv[2]}: SDK and Jaeger both sample {EXPECTED_SAMPLING[argv[2]]:.0%} of traces"
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
