#!/usr/bin/env bash
# Commits a changed overlay kustomization to main and pushes it, retrying on
# a race with another push. Used by the images workflow after set-images.sh.
#
# Usage: scripts/deploy/commit-overlay.sh OVERLAY TAG
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 OVERLAY TAG" >&2
  exit 2
fi
overlay="$1"
tag="$2"
file="k8s/overlays/$overlay/kustomization.yaml"

cd "$(dirname "$0")/../.."
git config user.name "github-actions[bot]"
git config user.email "41898282+github-actions[bot]@users.noreply.github.com"
git add "$file"
if git diff --cached --quiet; then
  echo "$file already deploys $tag; nothing to commit"
  exit 0
fi
git commit --quiet --message "Deploy $tag to $overlay" \
  --message "Set the images of k8s/overlays/$overlay to tag $tag so that Argo CD rolls them out."

for attempt in 1 2 3; do
  if git pull --quiet --rebase origin main && git push --quiet origin HEAD:main; then
    echo "pushed: $overlay now deploys $tag"
    exit 0
  fi
  echo "push attempt $attempt failed; retrying" >&2
  sleep $((attempt * 5))
done
echo "could not push the $overlay image bump after 3 attempts" >&2
exit 1
