package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	pb "outboard-go-example/gen/outboardv1"
)

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEmptyConfigIsValid(t *testing.T) {
	for _, c := range []*structpb.Struct{nil, mustStruct(t, map[string]any{})} {
		cfg, err := ParseConfig(c)
		if err != nil || len(cfg.Required) != 0 || len(cfg.Forbidden) != 0 {
			t.Fatalf("got %+v, %v", cfg, err)
		}
	}
}

func TestConfigParses(t *testing.T) {
	cfg, err := ParseConfig(mustStruct(t, map[string]any{
		"required":  []any{"HOME", "CI"},
		"forbidden": []any{"AWS_SECRET_ACCESS_KEY"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Required, ",") != "HOME,CI" || strings.Join(cfg.Forbidden, ",") != "AWS_SECRET_ACCESS_KEY" {
		t.Fatalf("got %+v", cfg)
	}
}

func TestInvalidConfigs(t *testing.T) {
	cases := []struct {
		config map[string]any
		want   string
	}{
		{map[string]any{"requried": []any{"HOME"}}, `unknown config key "requried"`},
		{map[string]any{"required": "HOME"}, `"required" must be an array`},
		{map[string]any{"required": []any{"HOME", 3}}, "required[1] must be a string"},
		{map[string]any{"forbidden": []any{nil}}, "forbidden[0] must be a string"},
		{map[string]any{"forbidden": []any{""}}, "forbidden[0] is an empty name"},
	}
	for _, c := range cases {
		_, err := ParseConfig(mustStruct(t, c.config))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error containing %q", c.config, err, c.want)
		}
	}
}

func TestSchemaIsAStruct(t *testing.T) {
	s := mustStruct(t, ConfigSchema())
	if s.Fields["additionalProperties"].GetBoolValue() != false || s.Fields["type"].GetStringValue() != "object" {
		t.Fatalf("schema: %v", s)
	}
}

func jobContext(t *testing.T, env map[string]any) *structpb.Struct {
	return mustStruct(t, map[string]any{"command": []any{"true"}, "env": env, "metadata": map[string]any{}})
}

func TestMissingRequiredAborts(t *testing.T) {
	cfg := Config{Required: []string{"HOME", "CI", "USER"}}
	resp, err := Decide(cfg, jobContext(t, map[string]any{"CI": "", "USER": "root"}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Outcome != pb.Outcome_OUTCOME_ABORT || !strings.Contains(resp.Message, "HOME, CI") || strings.Contains(resp.Message, "USER") {
		t.Fatalf("got %v", resp)
	}
}

func TestForbiddenAborts(t *testing.T) {
	cfg := Config{Required: []string{"HOME"}, Forbidden: []string{"SECRET", "OTHER"}}
	resp, err := Decide(cfg, jobContext(t, map[string]any{"HOME": "/root", "SECRET": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Outcome != pb.Outcome_OUTCOME_ABORT || !strings.Contains(resp.Message, "SECRET") || strings.Contains(resp.Message, "OTHER") {
		t.Fatalf("got %v", resp)
	}
}

func TestAllGoodContinuesWithCount(t *testing.T) {
	cfg := Config{Required: []string{"HOME", "PATH"}, Forbidden: []string{"SECRET"}}
	resp, err := Decide(cfg, jobContext(t, map[string]any{"HOME": "/root", "PATH": "/bin"}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Outcome != pb.Outcome_OUTCOME_CONTINUE || len(resp.Patch) != 1 {
		t.Fatalf("got %v", resp)
	}
	op := resp.Patch[0]
	if op.Op != pb.PatchOp_PATCH_OP_SET || op.Path != "/metadata/env_guard/checked" || op.Value.GetNumberValue() != 3 {
		t.Fatalf("got %v", op)
	}
}

func TestEmptyConfigContinues(t *testing.T) {
	resp, err := Decide(Config{}, mustStruct(t, map[string]any{}))
	if err != nil || resp.Outcome != pb.Outcome_OUTCOME_CONTINUE || resp.Patch[0].Value.GetNumberValue() != 0 {
		t.Fatalf("got %v, %v", resp, err)
	}
}

func TestEnvNotAnObjectIsAnError(t *testing.T) {
	_, err := Decide(Config{Required: []string{"HOME"}}, mustStruct(t, map[string]any{"env": "HOME=/root"}))
	if err == nil || !strings.Contains(err.Error(), "not an object") {
		t.Fatalf("got %v", err)
	}
}

func TestNegotiate(t *testing.T) {
	set := func(string) (string, bool) { return "", true }
	unset := func(string) (string, bool) { return "", false }
	if v, err := negotiate("1", set); err != nil || v != 1 {
		t.Fatalf("1: %v %v", v, err)
	}
	if v, err := negotiate(" 2 , 1,,", set); err != nil || v != 1 {
		t.Fatalf("lenient: %v %v", v, err)
	}
	if _, err := negotiate("2,3", set); err == nil || !strings.Contains(err.Error(), "the host speaks 2,3; this plugin speaks 1") {
		t.Fatalf("none common: %v", err)
	}
	if _, err := negotiate("v1", set); err == nil || !strings.Contains(err.Error(), `"v1"`) {
		t.Fatalf("bad entry: %v", err)
	}
	if _, err := negotiate("0", set); err == nil {
		t.Fatal("0 accepted")
	}
	if _, err := negotiate("", unset); err == nil {
		t.Fatal("unset accepted")
	}
}
