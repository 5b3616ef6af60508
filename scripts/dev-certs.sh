#!/usr/bin/env bash
# Creates a throwaway CA and certificates for running the three binaries
# with mutual TLS on one machine, with openssl.
#
# Usage: scripts/dev-certs.sh [FOLDER]   (default: data/tls)
#
# FOLDER receives ca.crt, and NAME.crt with NAME.key for user-svc,
# order-svc and gateway. The service certificates are valid for localhost
# and 127.0.0.1, for server and client use, so order-svc presents its own
# certificate to user-svc. Keys are ECDSA P-256, certificates last 30 days.
# The CA key stays in FOLDER too: never use these files outside a
# developer's machine.
set -euo pipefail

readonly FOLDER="${1:-data/tls}"
readonly DAYS=30

command -v openssl >/dev/null || {
  echo "openssl is missing: install it (Debian: apt-get install openssl)" >&2
  exit 1
}
mkdir -p "$FOLDER"
cd "$FOLDER"

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout ca.key -out ca.crt -days "$DAYS" -subj "/CN=Lintas dev CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign"

for name in user-svc order-svc gateway; do
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$name.key" -out "$name.csr" -subj "/CN=$name"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out "$name.crt" -days "$DAYS" -extfile <(printf '%s\n' \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth,clientAuth" \
      "subjectAltName=DNS:localhost,IP:127.0.0.1")
  rm "$name.csr"
done
rm -f ca.srl
chmod 600 ./*.key
echo "wrote ca.crt and the certificates of user-svc, order-svc and gateway to $FOLDER"
