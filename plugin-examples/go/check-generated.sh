#!/usr/bin/env bash
# Fails (exit 1) if gen/outboardv1 differs from what generate.sh produces now.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$here/generate.sh" "$tmp"
if ! diff -ru "$here/gen/outboardv1" "$tmp/plugin-examples/go/gen/outboardv1"; then
    echo "check-generated.sh: gen/outboardv1 is out of date; run plugin-examples/go/generate.sh" >&2
    exit 1
fi
echo "gen/outboardv1 is up to date"
