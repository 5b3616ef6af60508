#!/usr/bin/env bash
# Fetches the GraphiQL playground's browser files from the npm registry and
# copies them into gateway/assets/graphiql/, which the gateway embeds at
# compile time. The build itself needs neither npm nor the network.
#
# Usage: scripts/update-graphiql.sh
#
# The package versions and their npm integrity hashes are pinned below, so a
# run with unchanged pins reproduces the committed files. To update, change a
# version, set its integrity to the output of
# `npm view PACKAGE@VERSION dist.integrity`, run this script, and change the
# version constants in gateway/src/graphql/playground.rs to match
# gateway/assets/graphiql/VERSIONS (a unit test there compares them).
#
# THIRD-PARTY-NOTICES collects the licenses of the packages that npm
# resolves today for graphiql's dependencies. graphiql.min.js bundles those
# packages, but in the versions of graphiql's own build, so the list is
# close to, not exactly, what the bundle contains.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly GRAPHIQL_VERSION=3.9.0
readonly GRAPHIQL_INTEGRITY=sha512-rJYFlHdBbug9+YbFSwRVvgfPjCayC7wHecZkx/qB4XLuQPFQZw/yB9pmHFtOJV6RiNBBHro3u1GdocKa3YcGRA==
readonly REACT_VERSION=18.3.1
readonly REACT_INTEGRITY=sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==
readonly REACT_DOM_VERSION=18.3.1
readonly REACT_DOM_INTEGRITY=sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==

readonly DESTINATION=gateway/assets/graphiql
readonly NPM_TIMEOUT=300 # seconds for one npm command

if ! command -v npm >/dev/null; then
  echo "npm is missing: install Node.js and npm to fetch the GraphiQL files" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# Downloads PACKAGE@VERSION as a tarball, checks its integrity against
# EXPECTED and unpacks it into $work/NAME.
fetch() {
  local name=$1 version=$2 expected=$3 integrity
  integrity=$(cd "$work" && timeout "$NPM_TIMEOUT" npm pack --json --loglevel=error "$name@$version" |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s)[0].integrity))')
  if [[ $integrity != "$expected" ]]; then
    echo "$name@$version: integrity $integrity does not match the pinned $expected" >&2
    exit 1
  fi
  mkdir -p "$work/$name"
  tar -xzf "$work/$name-$version.tgz" -C "$work/$name" --strip-components=1
}

echo "==> fetching graphiql $GRAPHIQL_VERSION, react $REACT_VERSION, react-dom $REACT_DOM_VERSION"
fetch graphiql "$GRAPHIQL_VERSION" "$GRAPHIQL_INTEGRITY"
fetch react "$REACT_VERSION" "$REACT_INTEGRITY"
fetch react-dom "$REACT_DOM_VERSION" "$REACT_DOM_INTEGRITY"

mkdir -p "$DESTINATION"
cp "$work/graphiql/graphiql.min.js" "$work/graphiql/graphiql.min.css" "$DESTINATION/"
cp "$work/graphiql/LICENSE" "$DESTINATION/LICENSE-graphiql"
cp "$work/react/umd/react.production.min.js" "$DESTINATION/"
cp "$work/react/LICENSE" "$DESTINATION/LICENSE-react"
cp "$work/react-dom/umd/react-dom.production.min.js" "$DESTINATION/"
cp "$work/react-dom/LICENSE" "$DESTINATION/LICENSE-react-dom"

cat >"$DESTINATION/VERSIONS" <<EOF
# Written by scripts/update-graphiql.sh: package, version, npm integrity.
graphiql $GRAPHIQL_VERSION $GRAPHIQL_INTEGRITY
react $REACT_VERSION $REACT_INTEGRITY
react-dom $REACT_DOM_VERSION $REACT_DOM_INTEGRITY
EOF

echo "==> collecting the licenses of graphiql's dependencies"
mkdir -p "$work/tree"
(
  cd "$work/tree"
  echo '{"private": true}' >package.json
  timeout "$NPM_TIMEOUT" npm install --no-audit --no-fund --loglevel=error --omit=dev \
    "graphiql@$GRAPHIQL_VERSION" "react@$REACT_VERSION" "react-dom@$REACT_DOM_VERSION" >/dev/null
)
cat >"$work/notices.cjs" <<'EOF'
// Reads installed package folders from stdin and prints the name, version,
// license and license texts of each. graphiql, react and react-dom are left
// out because their LICENSE files are copied on their own.
const fs = require('node:fs');
const path = require('node:path');
const own = new Set(['graphiql', 'react', 'react-dom']);
const folders = fs.readFileSync(0, 'utf8').split('\n').filter((line) => line.includes('node_modules'));
const packages = new Map();
for (const folder of folders) {
  const manifest = JSON.parse(fs.readFileSync(path.join(folder, 'package.json'), 'utf8'));
  const key = `${manifest.name} ${manifest.version}`;
  if (!own.has(manifest.name) && !packages.has(key)) {
    packages.set(key, { folder, manifest });
  }
}
console.log('Licenses of the dependencies of graphiql, react and react-dom, as npm resolves');
console.log('them; written by scripts/update-graphiql.sh.\n');
const keys = [...packages.keys()].sort();
for (const key of keys) {
  const { folder, manifest } = packages.get(key);
  const files = fs.readdirSync(folder).filter((file) => /^(licen[cs]e|copying)/i.test(file)).sort();
  console.log('='.repeat(78));
  console.log(`${key} (${manifest.license ?? 'no license field'})`);
  console.log('='.repeat(78));
  if (files.length === 0) {
    console.log('The package ships no license file.\n');
  }
  for (const file of files) {
    console.log(fs.readFileSync(path.join(folder, file), 'utf8').trimEnd() + '\n');
  }
}
EOF
(cd "$work/tree" && npm ls --all --parseable --omit=dev) |
  node "$work/notices.cjs" >"$DESTINATION/THIRD-PARTY-NOTICES"

du -b "$DESTINATION"/*
