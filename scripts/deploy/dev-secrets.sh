#!/usr/bin/env bash
# Creates the Secrets of a dev cluster with random values: the ones listed in
# k8s/base, k8s/overlays/dev and monitoring/base secrets.example.yaml.
#
# A Secret that already exists is kept as it is, because the PostgreSQL
# volumes keep the password they were initialised with. Delete a Secret (and
# the matching volume) to get a new value.
#
# Environment:
#   KUBECTL            kubectl command (default: kubectl)
#   ALERT_WEBHOOK_URL  URL that Alertmanager posts alerts to
#                      (default: an .invalid address, so nothing is sent)
set -euo pipefail

KUBECTL="${KUBECTL:-kubectl}"
ALERT_WEBHOOK_URL="${ALERT_WEBHOOK_URL:-http://alert-webhook.invalid/}"

# Prints 32 random bytes as URL-safe base64 without padding, so that a value
# can go into a database or Redis URL unescaped.
random_value() {
  head -c 32 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_'
}

secret_exists() {
  "$KUBECTL" get secret --namespace "$1" "$2" >/dev/null 2>&1
}

# Prints the value of KEY in an existing Secret.
secret_value() {
  "$KUBECTL" get secret --namespace "$1" "$2" --output "jsonpath={.data.$3}" | base64 --decode
}

# Creates Secret NAME in NAMESPACE from KEY=VALUE lines on standard input,
# unless it exists. The values never appear on a command line.
create_secret() {
  local namespace="$1" name="$2"
  if secret_exists "$namespace" "$name"; then
    echo "kept    secret $namespace/$name (exists)"
    cat >/dev/null
    return
  fi
  "$KUBECTL" create secret generic "$name" --namespace "$namespace" --from-env-file=/dev/stdin >/dev/null
  echo "created secret $namespace/$name"
}

# Prints the password of a data store, reusing the one in its Secret if any.
data_store_password() {
  local name="$1"
  if secret_exists lintas "$name"; then
    secret_value lintas "$name" password
  else
    random_value
  fi
}

users_password="$(data_store_password postgres-users-credentials)"
orders_password="$(data_store_password postgres-orders-credentials)"
redis_password="$(data_store_password redis-credentials)"

create_secret lintas postgres-users-credentials <<<"password=$users_password"
create_secret lintas postgres-orders-credentials <<<"password=$orders_password"
create_secret lintas redis-credentials <<<"password=$redis_password"

create_secret lintas user-svc-secrets <<EOF
DATABASE_URL=postgres://users:$users_password@postgres-users:5432/users?sslmode=disable
PAGE_TOKEN_SECRET=$(random_value)
EOF
create_secret lintas order-svc-secrets <<EOF
DATABASE_URL=postgres://orders:$orders_password@postgres-orders:5432/orders?sslmode=disable
PAGE_TOKEN_SECRET=$(random_value)
EOF
create_secret lintas gateway-secrets <<EOF
REDIS_URL=redis://:$redis_password@redis:6379/0
JWT_HS256_SECRET=$(random_value)
EOF

create_secret lintas-observability grafana-admin <<EOF
admin-user=admin
admin-password=$(random_value)
EOF
create_secret lintas-observability alertmanager-webhook <<<"url=$ALERT_WEBHOOK_URL"

echo "Admin token: JWT_HS256_SECRET=\$($KUBECTL -n lintas get secret gateway-secrets -o jsonpath='{.data.JWT_HS256_SECRET}' | base64 --decode) JWT_ISSUER=lintas-dev JWT_AUDIENCE=lintas cargo run -q -p gateway --bin lintas-token -- --subject ops --admin"
echo "Grafana admin password: $KUBECTL -n lintas-observability get secret grafana-admin -o jsonpath='{.data.admin-password}' | base64 --decode"
