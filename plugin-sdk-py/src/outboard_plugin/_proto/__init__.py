"""Code generated from proto/outboard/v1/plugin.proto by plugin-sdk-py/generate.sh. DO NOT EDIT."""
