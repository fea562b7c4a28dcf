"""Code generated from proto/outboard/v1/plugin.proto and host.proto by plugin-sdk-py/generate.sh. DO NOT EDIT."""
