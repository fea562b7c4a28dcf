#!/usr/bin/env bash
# Regenerates src/outboard_plugin/_proto/ from proto/outboard/v1/plugin.proto
# and host.proto with the pinned grpcio-tools (installed into .tools/venv by
# scripts/tools).
#
# protoc names the modules after the proto's path, so the generated
# plugin_pb2_grpc.py says `from outboard.v1 import plugin_pb2` (and
# host_pb2_grpc.py the same of host_pb2), which only works with the output
# directory itself on sys.path. The SDK keeps the
# generated modules inside its own package instead (outboard_plugin._proto)
# and turns that line into the relative `from . import plugin_pb2`. The
# descriptor keeps its file name `outboard/v1/plugin.proto`, so reflection
# and the protobuf descriptor pool see the same name as every other language.
#
# Usage: generate.sh [OUTPUT_DIR]   (default: src/outboard_plugin/_proto)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
python="${PYTHON:-$root/.tools/venv/bin/python}"
[ -x "$python" ] || { echo "generate.sh: $python not found: run scripts/tools" >&2; exit 1; }
out="${1:-$here/src/outboard_plugin/_proto}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" -m grpc_tools.protoc -I "$root/proto" \
    --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
    outboard/v1/plugin.proto outboard/v1/host.proto

mkdir -p "$out"
for name in plugin host; do
    rm -f "$out/${name}_pb2.py" "$out/${name}_pb2.pyi" "$out/${name}_pb2_grpc.py"
    cp "$tmp/outboard/v1/${name}_pb2.py" "$tmp/outboard/v1/${name}_pb2.pyi" "$out/"
    sed -e "s/^from outboard\.v1 import ${name}_pb2 as /from . import ${name}_pb2 as /" \
        "$tmp/outboard/v1/${name}_pb2_grpc.py" > "$out/${name}_pb2_grpc.py"
    grep -q "^from \. import ${name}_pb2 as " "$out/${name}_pb2_grpc.py" || {
        echo "generate.sh: the import in ${name}_pb2_grpc.py was not rewritten; has grpcio-tools changed its output?" >&2
        exit 1
    }
done
cat > "$out/__init__.py" <<'PY'
"""Code generated from proto/outboard/v1/plugin.proto and host.proto by plugin-sdk-py/generate.sh. DO NOT EDIT."""
PY
