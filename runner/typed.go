package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/invopop/jsonschema"
)

// Params is the params struct of a typed task type. TaskName, called on the zero value, names
// the task type, so the code that creates tasks (operator.Client.Enqueue) and the task itself share
// one Go type and cannot disagree on the name or the fields.
type Params interface {
	TaskName() string
}

// Validator is implemented by params that check themselves once decoded, for what JSON types
// cannot say (ranges, required values, combinations). The error is plain: the registry wraps
// it into a *ParamsError, and the task fails with reason InvalidParams and this message.
type Validator interface {
	Validate() error
}

// Register adds the task type named by P's TaskName, whose runs newTask builds and whose
// results are R. Each run's params are decoded strictly into a P (unknown fields, trailing data
// and wrong JSON types are errors, so a typo in a manifest never falls back to a default),
// checked by P's Validate method when it has one, and handed to newTask, which builds the run's
// Task. A run's result R is stored as JSON (json.RawMessage as it is; struct{} for none).
//
// description is one line for people (`kubectl get tasktypes`). The params' JSON Schema is
// generated from P: json tags name the fields, and `jsonschema` tags add what a reader needs
// (`jsonschema:"required,description=...,minimum=1,example=30s"`; see
// github.com/invopop/jsonschema). Fields are required only when tagged so.
//
// A name registered twice, an empty name or a nil newTask is an error: silently replacing a
// type would change what existing BackgroundTasks run.
func Register[P Params, R any](reg *Registry, description string, newTask func(P) (Task[R], error)) error {
	var zero P
	name := zero.TaskName()
	info, err := describe[P](name, description)
	if err != nil {
		return fmt.Errorf("runner: register task type %q: %w", name, err)
	}
	if newTask == nil {
		return fmt.Errorf("runner: register task type %q: nil constructor", name)
	}
	return reg.add(func(raw json.RawMessage) (Task[json.RawMessage], error) {
		p, err := DecodeParams[P](raw)
		if err != nil {
			return nil, err
		}
		t, err := newTask(p)
		if err != nil || t == nil {
			return nil, err
		}
		return encoded[R](t), nil
	}, info)
}

// MustRegister is Register that panics, for wiring in main, where a mistake is a programming
// error that should stop the binary at start-up.
func MustRegister[P Params, R any](reg *Registry, description string, newTask func(P) (Task[R], error)) {
	if err := Register(reg, description, newTask); err != nil {
		panic(err)
	}
}

// encoded is t with its result encoded as JSON.
func encoded[R any](t Task[R]) Task[json.RawMessage] {
	if raw, ok := any(t).(Task[json.RawMessage]); ok {
		return raw
	}
	return resultEncoder[R]{t}
}

// resultEncoder runs a Task[R] as a Task[json.RawMessage]; it keeps the task's memory size.
type resultEncoder[R any] struct{ Task[R] }

func (e resultEncoder[R]) Run(ctx context.Context, ctl Control) (json.RawMessage, error) {
	r, err := e.Task.Run(ctx, ctl)
	if err != nil {
		return nil, err
	}
	raw, merr := json.Marshal(r)
	if merr != nil {
		return nil, fmt.Errorf("encode the result: %w", merr)
	}
	if string(raw) == "null" {
		return nil, nil // no result
	}
	return raw, nil
}

// MemoryBytes is the task's own (Sized), else DefaultTaskMemory.
func (e resultEncoder[R]) MemoryBytes() int64 {
	if s, ok := e.Task.(Sized); ok {
		return s.MemoryBytes()
	}
	return DefaultTaskMemory
}

// DecodeParams decodes raw strictly into a P and validates it (Validator), the way Register
// does for every run. Empty params decode as {}. Tests of a task type use it to check their
// params handling without a runner.
func DecodeParams[P any](raw json.RawMessage) (P, error) {
	var p P
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("decode params: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return p, errors.New("decode params: unexpected data after the JSON object")
	}
	if v, ok := any(&p).(Validator); ok {
		return p, v.Validate()
	}
	if v, ok := any(p).(Validator); ok {
		return p, v.Validate()
	}
	return p, nil
}

// describe builds the TypeInfo of P from its JSON Schema.
func describe[P any](name, description string) (TypeInfo, error) {
	if reflect.TypeFor[P]().Kind() != reflect.Struct {
		return TypeInfo{}, fmt.Errorf("params type %s is not a struct", reflect.TypeFor[P]())
	}
	r := jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true, Anonymous: true, RequiredFromJSONSchemaTags: true}
	s := r.Reflect(new(P))
	s.Version = ""
	if s.Description == "" {
		s.Description = description
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return TypeInfo{}, fmt.Errorf("encode the params schema: %w", err)
	}
	info := TypeInfo{Name: name, Description: description, Schema: raw, Fields: []string{}}
	example := map[string]any{}
	if s.Properties != nil {
		for pair := s.Properties.Oldest(); pair != nil; pair = pair.Next() {
			info.Fields = append(info.Fields, pair.Key)
			switch prop := pair.Value; {
			case len(prop.Examples) > 0:
				example[pair.Key] = prop.Examples[0]
			case prop.Default != nil:
				example[pair.Key] = prop.Default
			}
		}
	}
	if _, custom := any(new(P)).(json.Unmarshaler); custom {
		info.Fields = nil // it decodes itself: any field may be its own
	}
	if len(example) > 0 {
		if info.Example, err = json.Marshal(example); err != nil {
			return TypeInfo{}, fmt.Errorf("encode the params example: %w", err)
		}
	}
	return info, nil
}
