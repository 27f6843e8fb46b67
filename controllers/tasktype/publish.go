package tasktype

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
)

// CatalogName is the ConfigMap (in each deployment's namespace) that lists the task types the
// cluster's operators serve, for the ValidatingAdmissionPolicy that refuses a BackgroundTask
// naming no served type or a params field its type does not have (config/admission): one key
// per type, whose value is its params fields separated by commas ("*": any field). Each
// deployment owns its keys (server-side apply, field manager FieldManager).
const CatalogName = "taskpilot-task-types"

// anyField is the catalog value of a type that accepts any params field.
const anyField = "*"

// publishInterval is how often the leader publishes again: a new deployment serving one of
// its types shows as a conflict within it, and a TaskType deleted by hand comes back.
const publishInterval = time.Minute

// publishRenew is how often an entry's publication time is renewed although nothing changed:
// an entry older than three times this is a deployment that is gone (StaleServer), whose
// types count as served by nobody.
const publishRenew = 10 * time.Minute

// StaleServer reports whether a TaskType entry was last published so long ago that its
// deployment is gone (it would have renewed it).
func StaleServer(s v1alpha1.TaskTypeServer, now time.Time) bool {
	return s.PublishedAt == nil || now.Sub(s.PublishedAt.Time) > 3*publishRenew
}

// Publisher publishes what this operator deployment serves, on its elected leader: a TaskType
// per registered type (this deployment's entry of status.servedBy, and the Served and
// Conflict conditions), and this deployment's keys of the task-type catalog. Types it no longer
// serves lose its entry; a TaskType nobody serves is deleted.
type Publisher struct {
	client     client.Client
	reader     client.Reader // uncached: TaskTypes are read rarely and need not be cached
	registry   *runner.Registry
	namespace  string
	deployment string
	clock      clock.PassiveClock
	leading    func() bool
	kicks      chan struct{} // a new leader publishes at once
	log        logr.Logger
}

// Options configure a Publisher.
type Options struct {
	Client client.Client
	// Reader reads TaskTypes uncached: they are read rarely and need not be cached.
	Reader     client.Reader
	Registry   *runner.Registry
	Namespace  string
	Deployment string
	Clock      clock.PassiveClock
	Leading    func() bool
	Log        logr.Logger
}

// New returns the publisher; add it to the manager (it runs on every replica and publishes
// while leading).
func New(o Options) *Publisher {
	return &Publisher{client: o.Client, reader: o.Reader, registry: o.Registry, namespace: o.Namespace,
		deployment: o.Deployment, clock: o.Clock, leading: o.Leading, kicks: make(chan struct{}, 1), log: o.Log}
}

// FieldManager is the server-side apply field manager under which a deployment writes its
// TaskType entries and catalog keys.
func FieldManager(namespace, deployment string) string {
	return "taskpilot-" + namespace + "-" + deployment
}

// NeedLeaderElection: it runs on every replica and publishes while leading (leader.go).
func (p *Publisher) NeedLeaderElection() bool { return false }

// Kick asks for a publication now (on becoming leader); it never blocks.
func (p *Publisher) Kick() {
	select {
	case p.kicks <- struct{}{}:
	default:
	}
}

// Start publishes, while this replica leads, at once and then every publishInterval until ctx
// ends (manager.Runnable).
func (p *Publisher) Start(ctx context.Context) error {
	ticker := time.NewTicker(publishInterval)
	defer ticker.Stop()
	for {
		if p.leading() {
			if err := p.publish(ctx); err != nil && ctx.Err() == nil {
				p.log.Info("cannot publish the task types; retrying", "error", err.Error(), "in", publishInterval)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-p.kicks:
		}
	}
}

func (p *Publisher) publish(ctx context.Context) error {
	served := p.registry.Types()
	for _, t := range served {
		if err := p.publishType(ctx, t); err != nil {
			return err
		}
	}
	if err := p.unpublishOthers(ctx, served); err != nil {
		return err
	}
	return p.publishCatalog(ctx, served)
}

// publishType makes sure the TaskType exists and applies this deployment's entry with the
// conditions as they are now.
func (p *Publisher) publishType(ctx context.Context, t runner.TypeInfo) error {
	var current v1alpha1.TaskType
	err := p.reader.Get(ctx, types.NamespacedName{Name: t.Name}, &current)
	switch {
	case apierrors.IsNotFound(err):
		current = v1alpha1.TaskType{ObjectMeta: metav1.ObjectMeta{Name: t.Name}}
		if err := p.client.Create(ctx, &current); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create TaskType %s: %w", t.Name, err)
		}
	case err != nil:
		return fmt.Errorf("read TaskType %s: %w", t.Name, err)
	}
	entry := v1alpha1.TaskTypeServer{Namespace: p.namespace, Deployment: p.deployment, Description: t.Description}
	if len(t.Schema) > 0 {
		entry.ParamsSchema = rawObject(t.Schema)
	}
	if len(t.Example) > 0 {
		entry.Example = rawObject(t.Example)
	}
	// Keep the publication time while nothing else changed, so a re-publish writes nothing,
	// until it is due for renewal.
	now := metav1.NewTime(p.clock.Now()).Rfc3339Copy()
	entry.PublishedAt = &now
	for _, e := range current.Status.ServedBy {
		if e.Namespace == p.namespace && e.Deployment == p.deployment && sameEntry(e, entry) &&
			e.PublishedAt != nil && now.Sub(e.PublishedAt.Time) < publishRenew {
			entry.PublishedAt = e.PublishedAt
		}
	}
	conditions := append([]metav1.Condition(nil), current.Status.Conditions...)
	live := slices.DeleteFunc(slices.Clone(current.Status.ServedBy), func(s v1alpha1.TaskTypeServer) bool { return StaleServer(s, now.Time) })
	for _, c := range typeConditions(live, entry) {
		c.LastTransitionTime = now
		meta.SetStatusCondition(&conditions, c)
	}
	return p.applyStatus(ctx, t.Name, map[string]any{"servedBy": []v1alpha1.TaskTypeServer{entry}, "conditions": conditions})
}

// typeConditions are Served (always True for a type being published) and Conflict: True when
// another deployment serves the type too.
func typeConditions(servers []v1alpha1.TaskTypeServer, mine v1alpha1.TaskTypeServer) []metav1.Condition {
	names := []string{mine.Namespace + "/" + mine.Deployment}
	for _, e := range servers {
		if n := e.Namespace + "/" + e.Deployment; !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	served := metav1.Condition{Type: v1alpha1.ConditionServed, Status: metav1.ConditionTrue, Reason: "Published",
		Message: "served by " + strings.Join(names, ", ")}
	conflict := metav1.Condition{Type: v1alpha1.ConditionConflict, Status: metav1.ConditionFalse, Reason: "OneDeployment",
		Message: "one operator deployment serves this type"}
	if len(names) > 1 {
		conflict.Status, conflict.Reason = metav1.ConditionTrue, "SeveralDeployments"
		conflict.Message = fmt.Sprintf("%d operator deployments serve this type (%s): each may run its tasks; serve it from one",
			len(names), strings.Join(names, ", "))
	}
	return []metav1.Condition{served, conflict}
}

// unpublishOthers removes this deployment's entry from the TaskTypes it no longer serves, and
// deletes a TaskType nobody serves any more.
func (p *Publisher) unpublishOthers(ctx context.Context, served []runner.TypeInfo) error {
	var list v1alpha1.TaskTypeList
	if err := p.reader.List(ctx, &list); err != nil {
		return fmt.Errorf("list TaskTypes: %w", err)
	}
	for i := range list.Items {
		tt := &list.Items[i]
		if slices.ContainsFunc(served, func(t runner.TypeInfo) bool { return t.Name == tt.Name }) {
			continue
		}
		mine := slices.ContainsFunc(tt.Status.ServedBy, func(e v1alpha1.TaskTypeServer) bool {
			return e.Namespace == p.namespace && e.Deployment == p.deployment
		})
		if !mine {
			continue
		}
		if len(tt.Status.ServedBy) == 1 {
			// Only this deployment served it: delete it, unless someone published meanwhile.
			err := p.client.Delete(ctx, tt, client.Preconditions{ResourceVersion: &tt.ResourceVersion})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("delete TaskType %s: %w", tt.Name, err)
			}
			continue
		}
		// Applying nothing under this deployment's field manager drops what it owned: its entry.
		if err := p.applyStatus(ctx, tt.Name, map[string]any{}); err != nil {
			return err
		}
	}
	return nil
}

// publishCatalog applies this deployment's keys of the catalog: the admission policy's view
// of which types exist and which params fields they take.
func (p *Publisher) publishCatalog(ctx context.Context, served []runner.TypeInfo) error {
	data := map[string]string{}
	for _, t := range served {
		data[t.Name] = catalogFields(t)
	}
	body, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": CatalogName, "namespace": p.namespace,
			"labels": map[string]string{"app.kubernetes.io/name": "taskpilot", "app.kubernetes.io/component": "task-type-catalog"}},
		"data": data})
	if err != nil {
		return fmt.Errorf("encode the task-type catalog: %w", err)
	}
	cm := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: p.namespace, Name: CatalogName}}
	if err := p.client.Patch(ctx, cm, client.RawPatch(types.ApplyPatchType, body),
		client.FieldOwner(FieldManager(p.namespace, p.deployment)), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply the task-type catalog %s/%s: %w", p.namespace, CatalogName, err)
	}
	return nil
}

// catalogFields is a type's catalog value: its params fields, comma-separated ("" for a type
// without params, "*" for one that takes any field).
func catalogFields(t runner.TypeInfo) string {
	if t.Fields == nil {
		return anyField
	}
	return strings.Join(t.Fields, ",")
}

// applyStatus applies status (a TaskType status object's fields) under this deployment's field
// manager.
func (p *Publisher) applyStatus(ctx context.Context, name string, status map[string]any) error {
	body, err := json.Marshal(map[string]any{"apiVersion": v1alpha1.GroupVersion().String(), "kind": "TaskType",
		"metadata": map[string]any{"name": name}, "status": status})
	if err != nil {
		return fmt.Errorf("encode TaskType %s: %w", name, err)
	}
	tt := &v1alpha1.TaskType{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := p.client.Status().Patch(ctx, tt, client.RawPatch(types.ApplyPatchType, body),
		client.FieldOwner(FieldManager(p.namespace, p.deployment)), client.ForceOwnership); err != nil {
		return fmt.Errorf("publish TaskType %s: %w", name, err)
	}
	return nil
}

// sameEntry compares two entries except for their publication time, and their JSON values as
// values (the API server stores objects with their keys sorted).
func sameEntry(a, b v1alpha1.TaskTypeServer) bool {
	return a.Namespace == b.Namespace && a.Deployment == b.Deployment && a.Description == b.Description &&
		sameJSON(a.ParamsSchema, b.ParamsSchema) && sameJSON(a.Example, b.Example)
}

func sameJSON(a, b *runtime.RawExtension) bool {
	if a == nil || b == nil {
		return a == b
	}
	var av, bv any
	return json.Unmarshal(a.Raw, &av) == nil && json.Unmarshal(b.Raw, &bv) == nil && reflect.DeepEqual(av, bv)
}

// rawObject wraps JSON for a field of the API.
func rawObject(raw json.RawMessage) *runtime.RawExtension { return &runtime.RawExtension{Raw: raw} }
