#!/usr/bin/env python3
"""Check an environment's NetworkPolicies against the flows in network-flows.yaml.

Usage: check_network_flows.py ENVIRONMENT BUILT.yaml [BUILT.yaml ...]

ENVIRONMENT is dev or prod. Pass the built platform and observability
overlays of that environment. The check evaluates the policies as the
Kubernetes NetworkPolicy API defines them:
  - a pod selected by no policy of a direction allows all traffic in it;
  - otherwise a connection passes if any selecting policy's rule matches the
    peer and the port;
  - a connection needs both the source's egress and the destination's ingress.

It then requires that every listed "allow" flow passes and every "deny"
flow is blocked. Any other flow between two workloads, on any container port
the destination declares, must be blocked by both sides: neither the
source's egress rules nor the destination's ingress rules may allow it.

Limits of the model: ipBlock rules match only the endpoints with an "ip" in
network-flows.yaml, never pod addresses, and named ports in policies resolve
against the destination's container ports.
"""

import ipaddress
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from manifests import load_documents, pod_labels, pod_spec, selector_matches, workloads

FLOWS_FILE = Path(__file__).with_name("network-flows.yaml")
FLOW_PATTERN = re.compile(r"^(\S+) -> (\S+):(\d+)(?:/(tcp|udp))?$")


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels) or an address outside the cluster (ip)."""

    name: str
    namespace: str = ""
    labels: tuple = ()
    ip: str = ""
    # Container ports as (name, number, protocol).
    ports: tuple = field(default=())

    @property
    def label_map(self):
        return dict(self.labels)


@dataclass(frozen=True)
class Flow:
    source: Endpoint
    destination: Endpoint
    port: int
    protocol: str

    def __str__(self):
        return f"{self.source.name} -> {self.destination.name}:{self.port}/{self.protocol.lower()}"


def build_endpoints(documents, declared):
    """Return the workloads and the declared outside endpoints by name."""
    endpoints = {}
    for workload in workloads(documents):
        labels = pod_labels(workload)
        name = labels.get("app.kubernetes.io/name", workload["metadata"]["name"])
        ports = tuple(
            (port.get("name", ""), port["containerPort"], port.get("protocol", "TCP"))
            for container in pod_spec(workload)["containers"]
            for port in container.get("ports", [])
        )
        endpoints[name] = Endpoint(
            name=name,
            namespace=workload["metadata"]["namespace"],
            labels=tuple(sorted(labels.items())),
            ports=ports,
        )
    for name, spec in declared.items():
        endpoints[name] = Endpoint(
            name=name,
            namespace=spec.get("namespace", ""),
            labels=tuple(sorted((spec.get("labels") or {}).items())),
            ip=spec.get("ip", ""),
        )
    return endpoints


def namespace_labels(namespace, documents):
    labels = {"kubernetes.io/metadata.name": namespace}
    for doc in documents:
        if doc.get("kind") == "Namespace" and doc["metadata"]["name"] == namespace:
            labels.update(doc["metadata"].get("labels", {}))
    return labels


def peer_matches(peer, policy_namespace, endpoint, documents):
    """Return whether one from/to entry of a policy rule matches an endpoint."""
    if "ipBlock" in peer:
        if not endpoint.ip:
            return False
        address = ipaddress.ip_address(endpoint.ip)
        block = peer["ipBlock"]
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(excluded) for excluded in block.get("except", []))

    if endpoint.ip:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], namespace_labels(endpoint.namespace, documents)):
            return False
    elif endpoint.namespace != policy_namespace:
        return False
    if "podSelector" in peer:
        return selector_matches(peer["podSelector"], endpoint.label_map)
    return True


def port_matches(rule_ports, port, protocol, destination):
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        value = rule_port.get("port")
        if value is None:
            return True
        if isinstance(value, str):
            numbers = {number for name, number, _ in destination.ports if name == value}
            if port in numbers:
                return True
            continue
        if value <= port <= rule_port.get("endPort", value):
            return True
    return False


def policy_types(policy):
    spec = policy["spec"]
    if "policyTypes" in spec:
        return set(spec["policyTypes"])
    return {"Ingress", "Egress"} if "egress" in spec else {"Ingress"}


def direction_allows(direction, pod, peer, port, protocol, destination, policies, documents):
    """Return whether the policies selecting pod let the connection pass in one direction."""
    if pod.ip:
        return True  # Outside the cluster: no policy applies.
    selecting = [
        policy
        for policy in policies
        if policy["metadata"]["namespace"] == pod.namespace
        and direction in policy_types(policy)
        and selector_matches(policy["spec"].get("podSelector", {}), pod.label_map)
    ]
    if not selecting:
        return True

    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(
                peer_matches(entry, policy["metadata"]["namespace"], peer, documents) for entry in peers
            )
            if peer_ok and port_matches(rule.get("ports"), port, protocol, destination):
                return True
    return False


def flow_allowed(flow, policies, documents):
    egress = direction_allows(
        "Egress", flow.source, flow.destination, flow.port, flow.protocol, flow.destination, policies, documents
    )
    ingress = direction_allows(
        "Ingress", flow.destination, flow.source, flow.port, flow.protocol, flow.destination, policies, documents
    )
    return egress and ingress


def expand_flow(text, endpoints):
    """Return the flows that one "SOURCE -> DESTINATION:PORT" line stands for."""
    match = FLOW_PATTERN.match(text)
    if not match:
        raise ValueError(f"invalid flow {text!r}: expected 'SOURCE -> DESTINATION:PORT[/udp]'")
    source_name, destination_name, port, protocol = match.groups()
    if destination_name not in endpoints:
        raise ValueError(f"flow {text!r}: unknown destination {destination_name}")
    if source_name.startswith("*"):
        namespace = source_name[1:]
        sources = [e for e in endpoints.values() if e.namespace == namespace and e.ports]
        if not sources:
            raise ValueError(f"flow {text!r}: no workload in namespace {namespace}")
    elif source_name in endpoints:
        sources = [endpoints[source_name]]
    else:
        raise ValueError(f"flow {text!r}: unknown source {source_name}")
    protocol = (protocol or "tcp").upper()
    return [Flow(source, endpoints[destination_name], int(port), protocol) for source in sources]


def main(argv):
    if len(argv) < 3 or argv[1] not in ("dev", "prod"):
        print(__doc__, file=sys.stderr)
        return 2
    environment = argv[1]
    documents = load_documents(*argv[2:])
    policies = [doc for doc in documents if doc.get("kind") == "NetworkPolicy"]
    expectations = yaml.safe_load(FLOWS_FILE.read_text())
    endpoints = build_endpoints(documents, expectations["endpoints"])

    sections = (expectations["common"], expectations[environment])
    try:
        allowed = [flow for section in sections for line in section["allow"] for flow in expand_flow(line, endpoints)]
        denied = [flow for section in sections for line in section["deny"] for flow in expand_flow(line, endpoints)]
    except ValueError as error:
        print(f"{FLOWS_FILE.name}: {error}", file=sys.stderr)
        return 1

    problems = []
    for flow in allowed:
        if not flow_allowed(flow, policies, documents):
            problems.append(f"flow {flow} is blocked but must be allowed")
    for flow in denied:
        if flow_allowed(flow, policies, documents):
            problems.append(f"flow {flow} is allowed but must be blocked")

    # Every other flow between two workloads must be blocked, and by both
    # sides: the source's egress rules and the destination's ingress rules
    # must each allow no more than the listed flows.
    expected = {(f.source.name, f.destination.name, f.port, f.protocol) for f in allowed}
    pods = [e for e in endpoints.values() if not e.ip and e.ports]
    checked = 0
    for source in pods:
        for destination in pods:
            for _, port, protocol in destination.ports:
                flow = Flow(source, destination, port, protocol)
                checked += 1
                if (source.name, destination.name, port, protocol) in expected:
                    continue
                if direction_allows("Egress", source, destination, port, protocol, destination, policies, documents):
                    problems.append(f"egress rules of {source.name} allow {flow}, which is not listed in {FLOWS_FILE.name}")
                if direction_allows("Ingress", destination, source, port, protocol, destination, policies, documents):
                    problems.append(f"ingress rules of {destination.name} allow {flow}, which is not listed in {FLOWS_FILE.name}")

    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(
        f"{environment}: {len(allowed)} allowed and {len(denied)} denied flows as listed, "
        f"{checked} workload-to-workload flows checked against {len(policies)} policies"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
