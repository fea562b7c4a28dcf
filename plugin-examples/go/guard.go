package main

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	pb "outboard-go-example/gen/outboardv1"
)

// Config is env-guard's configuration.
type Config struct {
	// Required names must be present in the context's env with a non-empty value.
	Required []string
	// Forbidden names must not be present in the context's env.
	Forbidden []string
}

// ConfigSchema is the JSON Schema (draft 2020-12) sent in the manifest.
func ConfigSchema() map[string]any {
	names := map[string]any{
		"type":  "array",
		"items": map[string]any{"type": "string", "minLength": 1},
	}
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"required":  names,
			"forbidden": names,
		},
		"additionalProperties": false,
	}
}

// ParseConfig checks a config the way the schema does, and more: the error
// message is meant for the operator.
func ParseConfig(config *structpb.Struct) (Config, error) {
	var out Config
	fields := config.GetFields()
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		value := fields[key]
		var list *[]string
		switch key {
		case "required":
			list = &out.Required
		case "forbidden":
			list = &out.Forbidden
		default:
			return Config{}, fmt.Errorf("unknown config key %q: env-guard accepts only \"required\" and \"forbidden\"", key)
		}
		names, err := stringList(key, value)
		if err != nil {
			return Config{}, err
		}
		*list = names
	}
	return out, nil
}

func stringList(key string, value *structpb.Value) ([]string, error) {
	lv, ok := value.GetKind().(*structpb.Value_ListValue)
	if !ok {
		return nil, fmt.Errorf("config key %q must be an array of environment variable names, got %s", key, kindName(value))
	}
	var names []string
	for i, item := range lv.ListValue.GetValues() {
		s, ok := item.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return nil, fmt.Errorf("config %s[%d] must be a string (an environment variable name), got %s", key, i, kindName(item))
		}
		if s.StringValue == "" {
			return nil, fmt.Errorf("config %s[%d] is an empty name", key, i)
		}
		names = append(names, s.StringValue)
	}
	return names, nil
}

func kindName(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return "a string"
	case *structpb.Value_NumberValue:
		return "a number"
	case *structpb.Value_BoolValue:
		return "a boolean"
	case *structpb.Value_StructValue:
		return "an object"
	case *structpb.Value_ListValue:
		return "an array"
	default:
		return "null"
	}
}

// ErrBadContext is returned when the context cannot be used (env is not an object).
type ErrBadContext struct{ Reason string }

func (e ErrBadContext) Error() string { return e.Reason }

// Decide computes the answer to an Invoke for the given context.
func Decide(cfg Config, context *structpb.Struct) (*pb.InvokeResponse, error) {
	var env map[string]*structpb.Value
	if v, ok := context.GetFields()["env"]; ok {
		switch k := v.GetKind().(type) {
		case *structpb.Value_StructValue:
			env = k.StructValue.GetFields()
		case nil, *structpb.Value_NullValue:
			// no env: every required name is missing
		default:
			return nil, ErrBadContext{fmt.Sprintf("the context's env is %s, not an object", kindName(v))}
		}
	}
	var missing []string
	for _, name := range cfg.Required {
		if !presentNonEmpty(env[name]) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return &pb.InvokeResponse{
			Outcome: pb.Outcome_OUTCOME_ABORT,
			Message: "required environment variables missing or empty: " + strings.Join(missing, ", "),
		}, nil
	}
	var present []string
	for _, name := range cfg.Forbidden {
		if _, ok := env[name]; ok {
			present = append(present, name)
		}
	}
	if len(present) > 0 {
		return &pb.InvokeResponse{
			Outcome: pb.Outcome_OUTCOME_ABORT,
			Message: "forbidden environment variables present: " + strings.Join(present, ", "),
		}, nil
	}
	checked := len(cfg.Required) + len(cfg.Forbidden)
	return &pb.InvokeResponse{
		Outcome: pb.Outcome_OUTCOME_CONTINUE,
		Patch: []*pb.PatchOperation{{
			Op:    pb.PatchOp_PATCH_OP_SET,
			Path:  "/metadata/env_guard/checked",
			Value: structpb.NewNumberValue(float64(checked)),
		}},
	}, nil
}

func presentNonEmpty(v *structpb.Value) bool {
	if v == nil {
		return false
	}
	switch k := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return false
	case *structpb.Value_StringValue:
		return k.StringValue != ""
	default:
		return true
	}
}
