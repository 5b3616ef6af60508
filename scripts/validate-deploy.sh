#!/usr/bin/env bash
# Checks every deployment file with its own tool, plus the rules this project
# sets for them. It covers the Kubernetes manifests (kustomize, JSON schemas,
# security, network flows), Argo CD, Prometheus, Alertmanager, Grafana,
# Alloy, Loki and Jaeger, the GitHub Actions workflows, the Dockerfile and
# the shell scripts.
#
# Usage: scripts/validate-deploy.sh [CHECK ...]
#   Without arguments every check runs. Name checks to run only those, for
#   example `scripts/validate-deploy.sh security network-flows`. Checks that
#   read built manifests build them first. `--list` prints the check names.
#
# Each check prints one line. The script stops at the first failure, prints
# what the tool reported and exits 1.
#
# Missing tools are installed first, so a fresh Debian machine needs nothing
# else: Debian packages with apt-get (as root, or through sudo), and the
# pinned PyPI packages of scripts/deploy/requirements.txt in a virtual
# environment under target/deploy-tools, which /target in .gitignore already
# covers (set LINTAS_DEPLOY_TOOLS_DIR to move it). Later runs reuse both.
set -euo pipefail
cd "$(dirname "$0")/.."
# Keep the check scripts from leaving __pycache__ folders in the work tree.
export PYTHONDONTWRITEBYTECODE=1

readonly TOOLS_DIR="${LINTAS_DEPLOY_TOOLS_DIR:-$PWD/target/deploy-tools}"
readonly VENV="$TOOLS_DIR/venv"
readonly REQUIREMENTS=scripts/deploy/requirements.txt
readonly DEPLOY_SCRIPTS=scripts/deploy
# Kubernetes versions whose schemas the built manifests must satisfy: 1.31, as
# the native gRPC probes and the preStop sleep action need 1.30 or newer, and
# 1.37, the newest that kubernetes-validate 1.37.0 bundles.
readonly KUBERNETES_VERSIONS=(1.31.0 1.37.0)
readonly CHECK_TIMEOUT=120   # seconds for one tool run
readonly INSTALL_TIMEOUT=900 # seconds for one apt-get or pip run
readonly OVERLAYS=(k8s/overlays/dev k8s/overlays/prod k8s/overlays/local monitoring/overlays/dev monitoring/overlays/prod)
readonly METRICS=monitoring/base/metrics
readonly ALL_CHECKS=(
  kustomize schemas security network-flows secrets argocd
  promtool-config promtool-rules promtool-tests alert-coverage amtool
  grafana dashboards telemetry sampling
  actionlint hadolint shellcheck
)

WORK_DIR="$(mktemp -d)"
readonly WORK_DIR
trap 'rm -rf "$WORK_DIR"' EXIT
BUILT=false

# --- Output -------------------------------------------------------------------

pass() {
  printf 'ok    %-16s %s\n' "$1" "$2"
}

# Prints the failure and the tool's output, then exits 1.
fail() {
  local name="$1" message="$2" log="${3:-}"
  printf 'FAIL  %-16s %s\n' "$name" "$message" >&2
  if [[ -n "$log" && -s "$log" ]]; then
    sed -e 's/^/      /' "$log" | tail -n 60 >&2
  fi
  exit 1
}

# Runs a command for check NAME with a time limit, its output in a log file.
# On success prints DETAIL, or the command's last output line when DETAIL is
# empty.
run_check() {
  local name="$1" detail="$2"
  shift 2
  local log="$WORK_DIR/$name.log"
  local status=0
  # Name the tool, or the script when the tool is Python.
  local tool="$1"
  if [[ "$(basename "$1")" == python* ]]; then
    tool="$2"
  fi
  tool="$(basename "$tool")"
  timeout "$CHECK_TIMEOUT" "$@" >"$log" 2>&1 || status=$?
  if [[ $status -eq 124 ]]; then
    fail "$name" "$tool timed out after ${CHECK_TIMEOUT}s" "$log"
  elif [[ $status -ne 0 ]]; then
    fail "$name" "$tool found problems (exit $status):" "$log"
  fi
  if [[ -z "$detail" ]]; then
    detail="$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 || true)"
  fi
  pass "$name" "$detail"
}

# --- Tools --------------------------------------------------------------------

install_debian_packages() {
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  if [[ ${#missing[@]} -eq 0 ]]; then
    return
  fi

  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || fail install "Debian packages ${missing[*]} are missing; run as root or install sudo"
    sudo=(sudo)
  fi
  local log="$WORK_DIR/apt.log"
  echo "installing Debian packages: ${missing[*]}"
  timeout "$INSTALL_TIMEOUT" "${sudo[@]}" apt-get update -qq >"$log" 2>&1 ||
    fail install "apt-get update failed" "$log"
  timeout "$INSTALL_TIMEOUT" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1 ||
    fail install "apt-get install ${missing[*]} failed" "$log"
}

install_python_tools() {
  local stamp="$VENV/requirements.sha256"
  local wanted
  wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) python $(python3 -c 'import platform; print(platform.python_version())')"
  if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    return
  fi

  local log="$WORK_DIR/pip.log"
  echo "installing Python tools into $VENV"
  rm -rf "$VENV"
  mkdir -p "$TOOLS_DIR"
  python3 -m venv "$VENV" >"$log" 2>&1 || fail install "python3 -m venv $VENV failed" "$log"
  timeout "$INSTALL_TIMEOUT" "$VENV/bin/pip" install --disable-pip-version-check --no-input --quiet \
    --requirement "$REQUIREMENTS" >>"$log" 2>&1 ||
    fail install "pip install --requirement $REQUIREMENTS failed" "$log"
  echo "$wanted" >"$stamp"
}

print_tool_versions() {
  local kubectl_version kustomize_version
  kubectl_version="$("$VENV/bin/kubectl" version --client | sed -n 's/^Client Version: //p')"
  kustomize_version="$("$VENV/bin/kubectl" version --client | sed -n 's/^Kustomize Version: //p')"
  printf 'tools kubectl %s, kustomize %s, kubernetes-validate %s, promtool %s, amtool %s,\n' \
    "$kubectl_version" "$kustomize_version" \
    "$("$VENV/bin/kubernetes-validate" --version)" \
    "$(promtool --version 2>&1 | sed -n '1s/^promtool, version \([^ ]*\).*/\1/p')" \
    "$(amtool --version 2>&1 | sed -n '1s/^amtool, version \([^ ]*\).*/\1/p')"
  printf '      actionlint %s, hadolint %s, shellcheck %s, Python %s\n' \
    "$("$VENV/bin/actionlint" -version | head -n 1)" \
    "$("$VENV/bin/hadolint" --version | sed 's/.* //')" \
    "$(shellcheck --version | sed -n 's/^version: //p')" \
    "$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
}

# --- Checks -------------------------------------------------------------------

built_file() {
  echo "$WORK_DIR/built-$(echo "$1" | tr / -).yaml"
}

check_kustomize() {
  local overlay log
  for overlay in "${OVERLAYS[@]}"; do
    log="$WORK_DIR/kustomize.log"
    timeout "$CHECK_TIMEOUT" "$VENV/bin/kubectl" kustomize "$overlay" >"$(built_file "$overlay")" 2>"$log" ||
      fail kustomize "kubectl kustomize $overlay failed" "$log"
  done
  BUILT=true
  pass kustomize "${#OVERLAYS[@]} overlays built: ${OVERLAYS[*]}"
}

ensure_built() {
  if [[ $BUILT != true ]]; then
    check_kustomize
  fi
}

check_schemas() {
  ensure_built
  local files=() version_args=() version rest
  # cert-manager's kinds have no schema in kubernetes-validate:
  # check_cert_manager.py validates them against schemas/cert-manager.yaml
  # and writes the other resources to the file that kubernetes-validate reads.
  for overlay in "${OVERLAYS[@]}"; do
    rest="$WORK_DIR/without-cert-manager-$(echo "$overlay" | tr / -).yaml"
    run_check schemas "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_cert_manager.py" "$(built_file "$overlay")" "$rest"
    files+=("$rest")
  done
  for version in "${KUBERNETES_VERSIONS[@]}"; do
    version_args+=(--kubernetes-version "$version")
  done
  local log="$WORK_DIR/schemas.log"
  timeout "$CHECK_TIMEOUT" "$VENV/bin/kubernetes-validate" --strict --quiet "${version_args[@]}" "${files[@]}" \
    >"$log" 2>&1 || fail schemas "resources do not match the Kubernetes schemas" "$log"
  # A WARN line means no schema exists for a kind and apiVersion: a typo, or
  # an API that the version lacks.
  if grep -q '^WARN' "$log"; then
    fail schemas "resources without a Kubernetes schema" "$log"
  fi
  local count
  count="$(cat "${files[@]}" | grep -c '^kind:')"
  pass schemas "$count other resources valid against Kubernetes ${KUBERNETES_VERSIONS[*]} schemas (strict)"
}

check_security() {
  ensure_built
  local environment
  for environment in dev prod; do
    run_check security "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_manifests.py" \
      "$(built_file "k8s/overlays/$environment")" "$(built_file "monitoring/overlays/$environment")"
  done
}

check_network_flows() {
  ensure_built
  local environment
  for environment in dev prod; do
    run_check network-flows "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_network_flows.py" "$environment" \
      "$(built_file "k8s/overlays/$environment")" "$(built_file "monitoring/overlays/$environment")"
  done
}

check_secrets() {
  run_check secrets "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_secrets.py"
}

check_argocd() {
  run_check argocd "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_argocd.py" "$VENV/bin/kubectl"
}

check_promtool_config() {
  local copy="$WORK_DIR/prometheus.yml"
  run_check promtool-config "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_alerting.py" prometheus-copy "$copy"
  run_check promtool-config "promtool check config: $METRICS/prometheus.yml valid" promtool check config "$copy"
}

check_promtool_rules() {
  local rules=("$METRICS"/rules/*.yaml)
  run_check promtool-rules "promtool check rules: ${#rules[@]} rule files valid" promtool check rules "${rules[@]}"
}

check_promtool_tests() {
  local tests=("$METRICS"/tests/*.yaml)
  run_check promtool-tests "promtool test rules: ${#tests[@]} test files pass" promtool test rules "${tests[@]}"
}

check_alert_coverage() {
  run_check alert-coverage "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_alerting.py" alert-tests
}

check_amtool() {
  ensure_built
  local copy="$WORK_DIR/alertmanager.yml"
  run_check amtool "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_alerting.py" alertmanager-copy "$copy" \
    "$(built_file monitoring/overlays/dev)"
  run_check amtool "amtool check-config: $METRICS/alertmanager.yml valid" amtool check-config "$copy"
  # Routing: critical and warning alerts page through the webhook, an alert
  # without a severity stays with the default receiver.
  run_check amtool "critical alerts route to oncall-webhook" \
    amtool config routes test --config.file="$copy" --verify.receivers=oncall-webhook severity=critical alertname=LintasServiceDown
  run_check amtool "warning alerts route to oncall-webhook" \
    amtool config routes test --config.file="$copy" --verify.receivers=oncall-webhook severity=warning alertname=LintasCacheDegraded
  run_check amtool "alerts without severity route to default" \
    amtool config routes test --config.file="$copy" --verify.receivers=default alertname=Unlabelled
}

check_grafana() {
  run_check grafana "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_grafana.py"
}

check_dashboards() {
  run_check dashboards "generated dashboards match scripts/deploy/gen_dashboards.py" \
    "$VENV/bin/python" "$DEPLOY_SCRIPTS/gen_dashboards.py" --check
}

check_telemetry() {
  run_check telemetry "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_telemetry.py" configs
}

check_sampling() {
  ensure_built
  local environment
  for environment in dev prod; do
    run_check sampling "" "$VENV/bin/python" "$DEPLOY_SCRIPTS/check_telemetry.py" sampling "$environment" \
      "$(built_file "k8s/overlays/$environment")" "$(built_file "monitoring/overlays/$environment")"
  done
}

check_actionlint() {
  local workflows=(.github/workflows/*.yml)
  run_check actionlint "actionlint (with shellcheck): ${#workflows[@]} workflows clean" \
    "$VENV/bin/actionlint" -shellcheck "$(command -v shellcheck)" -no-color "${workflows[@]}"
}

check_hadolint() {
  run_check hadolint "hadolint: Dockerfile clean" "$VENV/bin/hadolint" --no-color Dockerfile
}

check_shellcheck() {
  local scripts=(scripts/validate-deploy.sh "$DEPLOY_SCRIPTS"/*.sh)
  run_check shellcheck "shellcheck: ${#scripts[@]} scripts clean" shellcheck --external-sources "${scripts[@]}"
}

# --- Main ---------------------------------------------------------------------

main() {
  if [[ "${1:-}" == "--list" ]]; then
    printf '%s\n' "${ALL_CHECKS[@]}"
    return
  fi
  local checks=("$@")
  if [[ ${#checks[@]} -eq 0 ]]; then
    checks=("${ALL_CHECKS[@]}")
  fi
  local check known
  for check in "${checks[@]}"; do
    known=false
    for name in "${ALL_CHECKS[@]}"; do
      [[ "$check" == "$name" ]] && known=true
    done
    [[ $known == true ]] || fail usage "unknown check '$check'; run with --list to see the check names"
  done

  install_debian_packages
  install_python_tools
  print_tool_versions

  for check in "${checks[@]}"; do
    "check_${check//-/_}"
  done
  echo "deployment files checked in ${SECONDS}s"
  # The closing line in the "N passed, N failed" form that CI summaries read.
  echo "validate-deploy: ${#checks[@]} passed, 0 failed"
}

main "$@"
