#!/usr/bin/env python3
"""Generate the Grafana dashboards in monitoring/base/grafana/dashboards.

The dashboards are written as Python data here and rendered to Grafana's JSON
model, so that a query or a panel is changed in one readable place. Run this
script after editing it, and commit the JSON it writes.

    scripts/deploy/gen_dashboards.py            # rewrite the JSON files
    scripts/deploy/gen_dashboards.py --check    # exit 1 if a file is stale

The queries use the recording rules in
monitoring/base/metrics/rules/lintas-recording.rules.yaml where one exists.
"""

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO_ROOT / "monitoring" / "base" / "grafana" / "dashboards"

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}

# Panels are laid out two per row, each 12 of Grafana's 24 columns wide.
PANEL_WIDTH = 12
PANEL_HEIGHT = 8


def target(expr, legend="", datasource=PROMETHEUS):
    """Return one query of a panel."""
    query = {"datasource": datasource, "expr": expr}
    if legend:
        query["legendFormat"] = legend
    return query


def timeseries(title, targets, unit, description=""):
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": targets[0]["datasource"],
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title, targets, unit, description="", mappings=None, thresholds=None):
    defaults = {"unit": unit}
    if mappings:
        defaults["mappings"] = mappings
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": targets[0]["datasource"],
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    }


def logs(title, expr, description=""):
    return {
        "type": "logs",
        "title": title,
        "description": description,
        "datasource": LOKI,
        "targets": [target(expr, datasource=LOKI)],
        "options": {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending"},
    }


def query_variable(name, label, query):
    """Return a multi-value template variable filled from a Prometheus label."""
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": PROMETHEUS,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard(uid, title, description, panels, variables=()):
    """Return a dashboard with panels laid out in rows of two and ids and refIds filled in."""
    laid_out = []
    for index, panel in enumerate(panels):
        panel = dict(panel)
        panel["id"] = index + 1
        panel["gridPos"] = {
            "h": PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "x": (index % 2) * PANEL_WIDTH,
            "y": (index // 2) * PANEL_HEIGHT,
        }
        panel["targets"] = [
            dict(query, refId=chr(ord("A") + position)) for position, query in enumerate(panel["targets"])
        ]
        laid_out.append(panel)

    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["lintas"],
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "templating": {"list": list(variables)},
        "panels": laid_out,
    }


def gateway_red():
    selector = 'app="gateway", route=~"$route"'
    latency_metric = "app_route:http_server_request_duration_seconds:histogram_quantile5m"
    panels = [
        timeseries(
            "Request rate by route",
            [target(f"app_route:http_server_requests:rate5m{{{selector}}}", "{{route}}")],
            "reqps",
        ),
        timeseries(
            "Error ratio (5xx) by route",
            [target(f"app_route:http_server_requests:error_ratio_rate5m{{{selector}}}", "{{route}}")],
            "percentunit",
        ),
        timeseries(
            "Latency p50 by route",
            [target(f'{latency_metric}{{{selector}, quantile="0.5"}}', "{{route}}")],
            "s",
        ),
        timeseries(
            "Latency p95 by route",
            [target(f'{latency_metric}{{{selector}, quantile="0.95"}}', "{{route}}")],
            "s",
        ),
        timeseries(
            "Latency p99 by route",
            [target(f'{latency_metric}{{{selector}, quantile="0.99"}}', "{{route}}")],
            "s",
        ),
        timeseries(
            "Responses by status class",
            [
                target(
                    f"sum by (status_class) (rate(http_server_requests_total{{{selector}}}[$__rate_interval]))",
                    "{{status_class}}",
                )
            ],
            "reqps",
        ),
        timeseries(
            "Backend calls by gRPC method",
            [target("sum by (method) (rate(gateway_backend_calls_total[$__rate_interval]))", "{{method}}")],
            "reqps",
            "Calls from the gateway to user-svc and order-svc.",
        ),
    ]
    variables = [
        query_variable("route", "Route", 'label_values(app_route:http_server_requests:rate5m{app="gateway"}, route)')
    ]
    return dashboard(
        "lintas-gateway-red",
        "Lintas / Gateway RED by route",
        "Rate, errors and duration of the gateway's HTTP routes (REST and GraphQL).",
        panels,
        variables,
    )


def grpc_red():
    selector = 'app=~"$app", method=~"$method"'
    latency_metric = "app_service_method:grpc_server_request_duration_seconds:histogram_quantile5m"
    legend = "{{app}} {{method}}"
    panels = [
        timeseries(
            "Call rate by method",
            [target(f"app_service_method:grpc_server_requests:rate5m{{{selector}}}", legend)],
            "reqps",
        ),
        timeseries(
            "Server error ratio by method",
            [target(f"app_service_method:grpc_server_requests:error_ratio_rate5m{{{selector}}}", legend)],
            "percentunit",
            "Share of calls that ended with UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE or DATA_LOSS.",
        ),
        timeseries(
            "Latency p50 by method",
            [target(f'{latency_metric}{{{selector}, quantile="0.5"}}', legend)],
            "s",
        ),
        timeseries(
            "Latency p95 by method",
            [target(f'{latency_metric}{{{selector}, quantile="0.95"}}', legend)],
            "s",
        ),
        timeseries(
            "Latency p99 by method",
            [target(f'{latency_metric}{{{selector}, quantile="0.99"}}', legend)],
            "s",
        ),
        timeseries(
            "Calls by status code",
            [
                target(
                    f"sum by (app, code) (rate(grpc_server_requests_total{{{selector}}}[$__rate_interval]))",
                    "{{app}} {{code}}",
                )
            ],
            "reqps",
        ),
    ]
    variables = [
        query_variable("app", "Service", "label_values(app_service_method:grpc_server_requests:rate5m, app)"),
        query_variable(
            "method", "Method", 'label_values(app_service_method:grpc_server_requests:rate5m{app=~"$app"}, method)'
        ),
    ]
    return dashboard(
        "lintas-grpc-red",
        "Lintas / gRPC RED by method",
        "Rate, errors and duration of the user-svc and order-svc gRPC methods.",
        panels,
        variables,
    )


def cache():
    degraded_mappings = [
        {"type": "value", "options": {"0": {"text": "Redis in use", "color": "green"}}},
        {"type": "value", "options": {"1": {"text": "Degraded: no cache", "color": "red"}}},
    ]
    panels = [
        stat(
            "Hit ratio (last 5 minutes)",
            [target('app:cache_requests:hit_ratio_rate5m{app="gateway"}')],
            "percentunit",
            "Hits over hits and misses. Errors and bypasses are left out.",
        ),
        stat(
            "Cache state",
            [target('max(cache_degraded{app="gateway"})')],
            "none",
            "1 while the gateway runs without Redis and sends every read to the backends.",
            mappings=degraded_mappings,
            thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}],
        ),
        timeseries(
            "Hit ratio",
            [target('app:cache_requests:hit_ratio_rate5m{app="gateway"}', "hit ratio")],
            "percentunit",
        ),
        timeseries(
            "Lookups by result",
            [target('app_result:cache_requests:rate5m{app="gateway"}', "{{result}}")],
            "reqps",
        ),
        timeseries(
            "Degraded gateway pods",
            [target('cache_degraded{app="gateway"}', "{{pod}}")],
            "none",
        ),
        timeseries(
            "Cache errors",
            [target('sum(rate(cache_requests_total{app="gateway", result="error"}[$__rate_interval]))', "errors")],
            "reqps",
        ),
    ]
    return dashboard(
        "lintas-cache",
        "Lintas / Cache hit ratio and degradation",
        "The gateway's Redis cache: how often it answers, and whether the gateway runs without it.",
        panels,
    )


def business():
    create_user_ok = (
        'grpc_server_requests_total{service="user.v1.UserService", method="CreateUser", code=~"(?i)ok"}'
    )
    panels = [
        stat(
            "Users created (24 h)",
            [target(f"sum(increase({create_user_ok}[24h]))")],
            "short",
            "Successful CreateUser calls.",
        ),
        stat(
            "Orders created (24 h)",
            [target("sum(increase(orders_created_total[24h]))")],
            "short",
        ),
        timeseries(
            "Users created per minute",
            [target(f"sum(rate({create_user_ok}[$__rate_interval])) * 60", "users")],
            "short",
        ),
        timeseries(
            "Orders created per minute",
            [target("sum(app:orders_created:rate5m) * 60", "orders")],
            "short",
        ),
        timeseries(
            "Payments by status per minute",
            [target("status:payments:rate5m * 60", "{{status}}")],
            "short",
        ),
        timeseries(
            "Payment failure ratio",
            [target(":payments:failure_ratio_rate10m", "failed")],
            "percentunit",
        ),
        timeseries(
            "Revenue per hour by currency (minor units)",
            [
                target(
                    'sum by (currency) (increase(payments_amount_minor_units_total{status="succeeded"}[1h]))',
                    "{{currency}}",
                )
            ],
            "short",
            "NOTE: needs the counter payments_amount_minor_units_total{currency,status}, "
            "which order-svc does not expose yet. Amounts are in minor units, such as cents (IDR has none).",
        ),
    ]
    return dashboard(
        "lintas-business",
        "Lintas / Business: users, orders, revenue",
        "What the platform does for its users: sign-ups, orders and payments.",
        panels,
    )


def telemetry_pipeline():
    panels = [
        timeseries(
            "Scrape targets down by job",
            [target("count by (job) (up == 0)", "{{job}}")],
            "none",
            "Targets that Prometheus fails to scrape. Empty is good.",
        ),
        timeseries(
            "Prometheus samples appended",
            [target("sum(rate(prometheus_tsdb_head_samples_appended_total[$__rate_interval]))", "samples")],
            "short",
        ),
        timeseries(
            "Rule evaluation failures and failed notifications",
            [
                target("sum(rate(prometheus_rule_evaluation_failures_total[$__rate_interval]))", "rule failures"),
                target(
                    "sum by (integration) (rate(alertmanager_notifications_failed_total[$__rate_interval]))",
                    "notifications failed ({{integration}})",
                ),
            ],
            "short",
        ),
        timeseries(
            "Jaeger spans received and refused",
            [
                target(
                    'sum(rate({__name__=~"otelcol_receiver_accepted_spans(_total)?"}[$__rate_interval]))',
                    "accepted",
                ),
                target(
                    'sum(rate({__name__=~"otelcol_receiver_refused_spans(_total)?"}[$__rate_interval]))',
                    "refused",
                ),
                target(
                    'sum(rate({__name__=~"otelcol_exporter_send_failed_spans(_total)?"}[$__rate_interval]))',
                    "storage write failed",
                ),
            ],
            "short",
            "The OpenTelemetry Collector metrics of Jaeger v2. The _total suffix differs between collector versions.",
        ),
        timeseries(
            "Log entries sent by Alloy and received by Loki",
            [
                target("sum(rate(loki_write_sent_entries_total[$__rate_interval]))", "sent by Alloy"),
                target("sum(rate(loki_write_dropped_entries_total[$__rate_interval]))", "dropped by Alloy"),
                target("sum(rate(loki_distributor_lines_received_total[$__rate_interval]))", "received by Loki"),
            ],
            "short",
        ),
        timeseries(
            "Log lines by app and level",
            [
                target(
                    'sum by (app, level) (count_over_time({namespace="lintas"}[1m]))',
                    "{{app}} {{level}}",
                    datasource=LOKI,
                )
            ],
            "short",
        ),
        logs(
            "Error logs of the Lintas pods",
            '{namespace="lintas", level="error"}',
            "Expand a line and use the TraceID link to open its trace in Jaeger.",
        ),
    ]
    return dashboard(
        "lintas-telemetry-pipeline",
        "Lintas / Telemetry pipeline health",
        "Whether metrics, traces and logs reach Prometheus, Jaeger and Loki.",
        panels,
    )


DASHBOARDS = {
    "lintas-gateway-red.json": gateway_red,
    "lintas-grpc-red.json": grpc_red,
    "lintas-cache.json": cache,
    "lintas-business.json": business,
    "lintas-telemetry-pipeline.json": telemetry_pipeline,
}


def render(build):
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare the committed JSON with freshly generated JSON instead of writing it",
    )
    args = parser.parse_args()

    stale = []
    for file_name, build in DASHBOARDS.items():
        path = DASHBOARD_DIR / file_name
        content = render(build)
        if args.check:
            if not path.exists() or path.read_text() != content:
                stale.append(str(path.relative_to(REPO_ROOT)))
        else:
            path.write_text(content)

    if stale:
        print(
            f"stale generated dashboards: {', '.join(stale)}; run scripts/deploy/gen_dashboards.py and commit the result",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
