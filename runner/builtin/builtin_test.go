package builtin_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
)

func TestBuiltinParamValidation(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, builtin.Register(reg))
	bad := []struct{ task, params, hint string }{
		{"sleep", `{}`, "duration"},
		{"sleep", `{"duration":"-1s"}`, "duration"},
		{"sleep", `{"duration":"1s","tick":"-1s"}`, "tick"},
		{"sleep", `{"duration":5}`, "duration"},
		{"sleep", `{"duration":"soon"}`, "soon"},
		{"sleep", `{"duration":"1s","durashun":"2s"}`, "durashun"},
		{"countdown", `{"interval":"1s"}`, "from"},
		{"countdown", `{"from":0,"interval":"1s"}`, "from"},
		{"countdown", `{"from":10}`, "interval"},
		{"countdown", `{"from":10,"interval":"1s","checkpointEvery":-2}`, "checkpointEvery"},
		{"countdown", `{"from":10,"intervall":"1s"}`, "intervall"},
		{"countdown", `{"from":10,"interval":"1s"} {}`, "after"},
		{"countdown", `[1]`, "decode"},
		{"checksum", `{}`, "blocks"},
		{"checksum", `{"blocks":-4}`, "blocks"},
		{"checksum", `{"blocks":4,"blockSize":-1}`, "blockSize"},
		{"checksum", `{"blocks":4,"blockSize":999999999}`, "blockSize"},
		{"checksum", `{"blocks":4,"seed":-1}`, "seed"},
		{"noop", `{"x":1}`, "x"},
	}
	for _, c := range bad {
		_, err := reg.Build(c.task, json.RawMessage(c.params))
		require.ErrorIs(t, err, runner.ErrInvalidParams, "%s %s", c.task, c.params)
		require.Contains(t, err.Error(), c.hint, "%s %s: message should point at the problem", c.task, c.params)
	}
	good := []struct{ task, params string }{
		{"sleep", `{"duration":"30s","tick":"1s"}`},
		{"sleep", `{"duration":"30s"}`},
		{"countdown", `{"from":100,"interval":"500ms"}`},
		{"countdown", `{"from":100,"interval":"500ms","checkpointEvery":10}`},
		{"checksum", `{"blocks":8,"blockSize":65536,"seed":1}`},
		{"noop", ``},
		{"noop", `{}`},
	}
	for _, c := range good {
		_, err := reg.Build(c.task, json.RawMessage(c.params))
		require.NoError(t, err, "%s %s", c.task, c.params)
	}
}
