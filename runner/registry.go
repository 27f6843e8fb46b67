package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Registry maps task type names to factories. It is an explicit value (not a
// package global) so tests and binaries can each wire their own set.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// NewRegistry returns an empty registry; call RegisterBuiltins to add the
// production task types.
func NewRegistry() *Registry {
	return &Registry{factories: make(map[string]Factory)}
}

// Register adds a task type. An empty name, a nil factory or a name already
// taken is an error: silently replacing a type would change what existing
// CRs run.
func (r *Registry) Register(name string, f Factory) error {
	if name == "" {
		return errors.New("runner: register task type: empty name")
	}
	if f == nil {
		return fmt.Errorf("runner: register task type %q: nil factory", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[name]; dup {
		return fmt.Errorf("runner: register task type %q: already registered", name)
	}
	r.factories[name] = f
	return nil
}

// MustRegister is Register that panics, for wiring in main where a mistake
// is a programming error that should stop the binary at start-up.
func (r *Registry) MustRegister(name string, f Factory) {
	if err := r.Register(name, f); err != nil {
		panic(err)
	}
}

// New builds a task. An unknown name wraps ErrUnknownTaskType; any factory
// failure (error, nil task, panic) is a *ParamsError wrapping
// ErrInvalidParams, because the params are the only input that varies.
func (r *Registry) New(name string, params json.RawMessage) (t Task, err error) {
	r.mu.RLock()
	f, ok := r.factories[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("task type %q: %w", name, ErrUnknownTaskType)
	}
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, &ParamsError{TaskName: name, Err: fmt.Errorf("factory panicked: %v", p)}
		}
	}()
	t, err = f(params)
	if err != nil {
		return nil, &ParamsError{TaskName: name, Err: err}
	}
	if t == nil {
		return nil, &ParamsError{TaskName: name, Err: errors.New("factory returned a nil task")}
	}
	return t, nil
}

// Names lists the registered types, sorted, for validation messages and
// documentation endpoints.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.factories))
	for n := range r.factories {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
