#!/usr/bin/env bash
# Points an overlay's three images at one tag with `kustomize edit set image`.
#
# Usage: scripts/deploy/set-images.sh OVERLAY TAG [OWNER]
#   OVERLAY  dev or prod (k8s/overlays/OVERLAY)
#   TAG      image tag, for example sha-1a2b3c4 or 0.2.0
#   OWNER    GitHub Container Registry owner, lower case (default: lintas-dev)
# Needs the kustomize binary, because kubectl's built-in kustomize has no edit command.
set -euo pipefail

readonly BINARIES=(gateway user-svc order-svc)

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 OVERLAY TAG [OWNER]" >&2
  exit 2
fi
overlay="$1"
tag="$2"
owner="${3:-lintas-dev}"

if [[ "$overlay" != dev && "$overlay" != prod ]]; then
  echo "invalid overlay '$overlay': expected dev or prod" >&2
  exit 2
fi
# The character set and length of a Docker tag.
if [[ ! "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "invalid image tag '$tag': use letters, digits, '_', '.' and '-', at most 128 characters" >&2
  exit 2
fi
if [[ ! "$owner" =~ ^[a-z0-9][a-z0-9-]*$ ]]; then
  echo "invalid registry owner '$owner': use lower-case letters, digits and '-'" >&2
  exit 2
fi
command -v kustomize >/dev/null || {
  echo "kustomize not found on PATH; install it (kubectl kustomize cannot edit)" >&2
  exit 1
}

cd "$(dirname "$0")/../../k8s/overlays/$overlay"
for binary in "${BINARIES[@]}"; do
  kustomize edit set image "lintas-$binary=ghcr.io/$owner/lintas-$binary:$tag"
  echo "k8s/overlays/$overlay: lintas-$binary -> ghcr.io/$owner/lintas-$binary:$tag"
done
