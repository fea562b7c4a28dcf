#!/usr/bin/env bash
# Fails (exit 1) if src/outboard_plugin/_proto differs from what generate.sh
# produces now from proto/outboard/v1/plugin.proto and host.proto.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$here/generate.sh" "$tmp/_proto"
if ! diff -ru --exclude=__pycache__ "$here/src/outboard_plugin/_proto" "$tmp/_proto"; then
    echo "check-generated.sh: src/outboard_plugin/_proto is out of date; run plugin-sdk-py/generate.sh" >&2
    exit 1
fi
echo "plugin-sdk-py: src/outboard_plugin/_proto is up to date"
