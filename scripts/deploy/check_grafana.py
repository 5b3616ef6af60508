#!/usr/bin/env python3
"""Check the Grafana provisioning files and dashboards.

- datasources.yaml parses, every data source has a unique uid, and every
  datasourceUid it refers to exists;
- Jaeger links to Loki by trace id (tracesToLogsV2) and Loki links back to
  Jaeger (a derived field whose regex extracts the trace id from a sample
  Lintas log line);
- every dashboard parses, has a unique uid, and refers only to existing data
  source uids, in panels, queries and template variables;
- the dashboards ConfigMap lists exactly the JSON files in the folder.

Prints a one-line summary, or the problems on stderr and exits 1.
"""

import json
import re
import sys

import yaml

from manifests import repository_root

GRAFANA_DIR = repository_root() / "monitoring" / "base" / "grafana"
# A line as the Lintas binaries write it (tracing-subscriber JSON, flattened).
SAMPLE_LOG_LINE = (
    '{"timestamp":"2026-01-01T00:00:00Z","level":"INFO","target":"gateway::http",'
    '"message":"request finished","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",'
    '"span_id":"00f067aa0ba902b7","service":"gateway"}'
)
SAMPLE_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def referenced_uids(node):
    """Yield every datasourceUid value and datasource.uid value found in a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasourceUid" and isinstance(value, str):
                yield value
            elif key == "datasource" and isinstance(value, dict) and "uid" in value:
                yield value["uid"]
            else:
                yield from referenced_uids(value)
    elif isinstance(node, list):
        for item in node:
            yield from referenced_uids(item)


def check_datasources(problems):
    provisioning = yaml.safe_load((GRAFANA_DIR / "datasources.yaml").read_text())
    sources = provisioning.get("datasources", [])
    uids = [source.get("uid") for source in sources]
    if None in uids:
        problems.append("datasources.yaml: a data source has no uid")
    if len(set(uids)) != len(uids):
        problems.append(f"datasources.yaml: duplicate uids in {uids}")
    by_type = {source["type"]: source for source in sources}

    for source in sources:
        for uid in referenced_uids(source.get("jsonData", {})):
            if uid not in uids:
                problems.append(f"datasources.yaml: {source['name']} refers to unknown data source uid {uid!r}")

    jaeger = by_type.get("jaeger", {})
    loki = by_type.get("loki", {})
    traces_to_logs = jaeger.get("jsonData", {}).get("tracesToLogsV2", {})
    if traces_to_logs.get("datasourceUid") != loki.get("uid"):
        problems.append("datasources.yaml: Jaeger tracesToLogsV2 does not point at the Loki data source")
    query = traces_to_logs.get("query", "")
    if traces_to_logs.get("customQuery") and "${__trace.traceId}" not in query.replace("$$", "$"):
        problems.append("datasources.yaml: Jaeger's custom logs query does not filter on ${__trace.traceId}")

    derived = [
        field
        for field in loki.get("jsonData", {}).get("derivedFields", [])
        if field.get("datasourceUid") == jaeger.get("uid")
    ]
    if not derived:
        problems.append("datasources.yaml: Loki has no derived field that links to the Jaeger data source")
    for field in derived:
        match = re.search(field["matcherRegex"], SAMPLE_LOG_LINE)
        if not match or match.group(1) != SAMPLE_TRACE_ID:
            problems.append(
                f"datasources.yaml: derived field {field['name']} regex {field['matcherRegex']!r} "
                f"does not extract the trace id from a Lintas log line"
            )
        if field.get("url") != "$${__value.raw}":
            problems.append(
                f"datasources.yaml: derived field {field['name']} url must be '$${{__value.raw}}' "
                "(the escaped form of ${__value.raw})"
            )
    return set(uids)


def check_dashboards(problems, known_uids):
    dashboard_files = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    dashboard_uids = {}
    for path in dashboard_files:
        try:
            model = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            problems.append(f"{path.name}: invalid JSON: {error}")
            continue
        uid = model.get("uid")
        if not uid:
            problems.append(f"{path.name}: dashboard has no uid")
        elif uid in dashboard_uids:
            problems.append(f"{path.name}: uid {uid} is also used by {dashboard_uids[uid]}")
        dashboard_uids[uid] = path.name
        if not model.get("panels"):
            problems.append(f"{path.name}: dashboard has no panels")
        for panel in model.get("panels", []):
            if not panel.get("targets"):
                problems.append(f"{path.name}: panel {panel.get('title')!r} has no queries")
        for reference in referenced_uids(model):
            if reference not in known_uids:
                problems.append(f"{path.name}: refers to unknown data source uid {reference!r}")
        if "${DS_" in path.read_text():
            problems.append(f"{path.name}: contains an import placeholder ${{DS_...}}; use a fixed data source uid")

    kustomization = yaml.safe_load((GRAFANA_DIR / "kustomization.yaml").read_text())
    listed = set()
    for generator in kustomization.get("configMapGenerator", []):
        if generator["name"] == "grafana-dashboards":
            listed = {entry.split("=")[-1] for entry in generator.get("files", [])}
    on_disk = {f"dashboards/{path.name}" for path in dashboard_files}
    for missing in sorted(on_disk - listed):
        problems.append(f"grafana/kustomization.yaml: {missing} is not in the grafana-dashboards ConfigMap")
    for stale in sorted(listed - on_disk):
        problems.append(f"grafana/kustomization.yaml: lists {stale}, which does not exist")
    return len(dashboard_files)


def main():
    problems = []
    known_uids = check_datasources(problems)
    dashboards = check_dashboards(problems, known_uids)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"{len(known_uids)} data sources wired, {dashboards} dashboards refer only to them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
