package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Registry maps task type names to factories and describes each type (TypeInfo), for the
// TaskType objects the operator publishes and the admission policy that checks new tasks. It
// is an explicit value (not a package global) so tests and binaries each wire their own set.
type Registry struct {
	mu    sync.RWMutex
	types map[string]registered
}

type registered struct {
	factory factory
	info    TypeInfo
}

// TypeInfo describes a registered task type.
type TypeInfo struct {
	// Name is the value of spec.taskName that runs this type.
	Name string
	// Description is one line for people (`kubectl get tasktypes`).
	Description string
	// Schema is the JSON Schema of the params, generated from the params struct.
	Schema json.RawMessage
	// Fields are the params' top-level fields, in declaration order; nil when the params
	// decode themselves (json.Unmarshaler) and so accept any field.
	Fields []string
	// Example is a params object built from the examples and defaults in the schema (nil
	// when it has none).
	Example json.RawMessage
	// Items: the type was registered with RegisterItems, so its BackgroundTasks carry
	// spec.items.
	Items bool
}

// NewRegistry returns an empty registry; builtin.Register adds taskpilot's own task types.
func NewRegistry() *Registry {
	return &Registry{types: make(map[string]registered)}
}

func (r *Registry) add(f factory, info TypeInfo) error {
	name := info.Name
	if name == "" {
		return errors.New("runner: register task type: empty name")
	}
	if f == nil {
		return fmt.Errorf("runner: register task type %q: nil factory", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.types[name]; dup {
		return fmt.Errorf("runner: register task type %q: already registered", name)
	}
	r.types[name] = registered{factory: f, info: info}
	return nil
}

// Build builds the task of one run of the type name from its params, as the operator does
// when a run starts (tests of a task type may use it too). An unknown name wraps
// ErrUnknownTaskType; any failure of the params or the constructor (error, nil task, panic) is
// a *ParamsError wrapping ErrInvalidParams, because the params are the only input that varies.
func (r *Registry) Build(name string, params json.RawMessage) (t Task[json.RawMessage], err error) {
	r.mu.RLock()
	reg, ok := r.types[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("task type %q: %w", name, ErrUnknownTaskType)
	}
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, &ParamsError{TaskName: name, Err: fmt.Errorf("factory panicked: %v", p)}
		}
	}()
	t, err = reg.factory(params)
	if err != nil {
		return nil, &ParamsError{TaskName: name, Err: err}
	}
	if t == nil {
		return nil, &ParamsError{TaskName: name, Err: errors.New("factory returned a nil task")}
	}
	return t, nil
}

// Has reports whether name is registered.
func (r *Registry) Has(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.types[name]
	return ok
}

// Info describes the type registered as name.
func (r *Registry) Info(name string) (TypeInfo, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	reg, ok := r.types[name]
	return reg.info, ok
}

// Names lists the registered types, sorted, for validation messages and
// documentation endpoints.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Types describes every registered type, sorted by name.
func (r *Registry) Types() []TypeInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]TypeInfo, 0, len(r.types))
	for _, reg := range r.types {
		out = append(out, reg.info)
	}
	slices.SortFunc(out, func(a, b TypeInfo) int { return cmpString(a.Name, b.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
