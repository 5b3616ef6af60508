# Lintas: build, test and deploy. `make` or `make help` lists the targets.
#
# The deploy targets work against the current kubectl context, and `make
# cluster` creates a local kind cluster for them. They need docker, kind,
# helm and kubectl on the PATH.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

KUBECTL ?= kubectl
KIND ?= kind
HELM ?= helm
DOCKER ?= docker
CLUSTER ?= lintas
# Environment of the observability overlay and of the Argo CD bootstrap: dev or prod.
ENV ?= dev
IMAGE_TAG ?= local
# A release tag of argoproj/argo-cd.
ARGOCD_VERSION ?= v3.1.0
BINARIES := gateway user-svc order-svc

.PHONY: help proto-gen run test test-e2e fuzz bench images cluster namespaces secrets deploy-all \
	setup-tracing setup-logging setup-observability monitoring-deploy gitops-deploy validate

help: ## List the targets with a one-line description
	@echo "Usage: make TARGET [ENV=dev|prod]"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z0-9-]+:.*## / { printf "  %-20s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

proto-gen: ## Generate the gRPC code from proto/ (cargo build -p lintas-proto)
	cargo build -p lintas-proto

run: ## Run the gateway and both services in one process (cargo run --release)
	cargo run --release

test: ## Run the test suite: Rust tests, deployment checks, then the end-to-end suite (scripts/test.sh)
	scripts/test.sh

test-e2e: ## Run the end-to-end suite: the platform on loopback, checked from outside (e2e/run.sh)
	e2e/run.sh

fuzz: ## Run each fuzz target of gateway/fuzz for FUZZ_SECONDS, default 20 (scripts/fuzz.sh)
	scripts/fuzz.sh

bench: ## Run the platform benchmark and write BENCHMARKS.md (bench/run.sh)
	BENCH_COMMAND="make bench" bench/run.sh

images: ## Build the three container images, tagged lintas-BINARY:IMAGE_TAG (default local)
	for binary in $(BINARIES); do \
		$(DOCKER) build --build-arg BINARY=$$binary --tag lintas-$$binary:$(IMAGE_TAG) .; \
	done

cluster: ## Create the local kind cluster with Traefik and metrics-server, unless it exists
	if ! $(KIND) get clusters | grep -qx '$(CLUSTER)'; then \
		$(KIND) create cluster --name $(CLUSTER) --config scripts/deploy/kind-config.yaml; \
	fi
	$(HELM) repo add traefik https://traefik.github.io/charts --force-update
	$(HELM) upgrade --install traefik traefik/traefik --namespace traefik --create-namespace \
		--set service.type=NodePort --set ports.web.nodePort=30080 --wait
	$(HELM) repo add metrics-server https://kubernetes-sigs.github.io/metrics-server/ --force-update
	$(HELM) upgrade --install metrics-server metrics-server/metrics-server --namespace kube-system \
		--set 'args={--kubelet-insecure-tls}' --wait

namespaces:
	$(KUBECTL) apply --server-side -f k8s/base/namespaces.yaml

secrets: namespaces ## Create the dev Secrets with random values (scripts/deploy/dev-secrets.sh)
	KUBECTL=$(KUBECTL) scripts/deploy/dev-secrets.sh

deploy-all: cluster images secrets ## Build the images and deploy platform and observability to the kind cluster
	for binary in $(BINARIES); do \
		$(KIND) load docker-image lintas-$$binary:$(IMAGE_TAG) --name $(CLUSTER); \
	done
	$(KUBECTL) apply --server-side -k k8s/overlays/local
	$(MAKE) setup-observability ENV=dev
	$(KUBECTL) -n lintas rollout status deployment/gateway --timeout=300s

# Applies the resources of one observability stack (tracing, logging, metrics
# or grafana) and the namespace-wide network policies from the ENV overlay.
define apply_stack
	$(KUBECTL) kustomize monitoring/overlays/$(ENV) \
		| $(KUBECTL) apply --server-side -f - --selector lintas.dev/stack=shared
	$(KUBECTL) kustomize monitoring/overlays/$(ENV) \
		| $(KUBECTL) apply --server-side -f - --selector lintas.dev/stack=$(1)
endef

setup-tracing: namespaces ## Deploy Jaeger (OTLP gRPC on 4317, UI on 16686)
	$(call apply_stack,tracing)

setup-logging: namespaces ## Deploy Loki (14-day retention) and the Alloy log collector
	$(call apply_stack,logging)

monitoring-deploy: secrets ## Deploy Prometheus, Alertmanager and Grafana with its dashboards
	$(call apply_stack,metrics)
	$(call apply_stack,grafana)

setup-observability: setup-tracing setup-logging monitoring-deploy ## Deploy tracing, logging, metrics, alerting and Grafana

gitops-deploy: cluster secrets ## Install Argo CD and let it deploy the ENV environment from Git
	$(KUBECTL) create namespace argocd --dry-run=client --output yaml | $(KUBECTL) apply -f -
	$(KUBECTL) apply --server-side --namespace argocd \
		-f https://raw.githubusercontent.com/argoproj/argo-cd/$(ARGOCD_VERSION)/manifests/install.yaml
	$(KUBECTL) -n argocd rollout status deployment/argocd-server --timeout=300s
	$(KUBECTL) apply -k argocd/$(ENV)

validate: ## Check every deployment file with its own tool (scripts/validate-deploy.sh)
	scripts/validate-deploy.sh
