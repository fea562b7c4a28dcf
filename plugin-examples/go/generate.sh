#!/usr/bin/env bash
# Regenerates gen/outboardv1 from the files of proto/outboard/v1 (plugin.proto,
# host.proto; the daemon's control API in proto/outboard/control is not a
# plugin's business).
# Installs the pinned protoc-gen-go and protoc-gen-go-grpc into
# $(go env GOPATH)/bin; needs buf (.tools/venv/bin/buf, from scripts/tools, or on PATH).
# Usage: generate.sh [OUTPUT_BASE]   (default: the repository root)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PATH="$(go env GOPATH)/bin:$PATH"
buf="$root/.tools/venv/bin/buf"
[ -x "$buf" ] || buf="$(command -v buf)"
# Pinned so that the drift check (check-generated.sh) does not depend on
# whatever @latest is today; `go install` is a no-op once they are built.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
export GOBIN="$(go env GOPATH)/bin"
go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
base="${1:-$root}"
cd "$root"
if [ "$base" = "$root" ]; then
    rm -rf plugin-examples/go/gen/outboardv1
    "$buf" generate proto --path proto/outboard/v1 --template plugin-examples/go/buf.gen.yaml
else
    "$buf" generate proto --path proto/outboard/v1 --template plugin-examples/go/buf.gen.yaml -o "$base"
fi
