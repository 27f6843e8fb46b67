package operator

import (
	"fmt"
	"net/http"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// ownTypesFirst is a REST mapper that knows the kinds taskpilot watches from the start, and asks
// the API server's discovery (controller-runtime's dynamic mapper) for the others. Building the
// manager's caches needs each watched kind's scope; with discovery alone that needed the API
// server to answer, and a replica started during an API server outage exited at once ("failed to
// get restmapping"): a crash loop under a Deployment.
type ownTypesFirst struct {
	meta.RESTMapper // discovery
	own             *meta.DefaultRESTMapper
}

// ownMapper builds the mapper (manager.Options.MapperProvider).
func ownMapper(cfg *rest.Config, httpClient *http.Client) (meta.RESTMapper, error) {
	discovered, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("REST mapper: %w", err)
	}
	gv := v1alpha1.GroupVersion()
	own := meta.NewDefaultRESTMapper([]schema.GroupVersion{gv, coordinationv1.SchemeGroupVersion})
	own.Add(gv.WithKind("BackgroundTask"), meta.RESTScopeNamespace)
	own.Add(gv.WithKind("TaskType"), meta.RESTScopeRoot)
	own.Add(gv.WithKind("TaskSchedule"), meta.RESTScopeNamespace)
	own.Add(coordinationv1.SchemeGroupVersion.WithKind("Lease"), meta.RESTScopeNamespace)
	return ownTypesFirst{RESTMapper: discovered, own: own}, nil
}

// RESTMapping implements meta.RESTMapper: taskpilot's kinds without asking the API server.
func (m ownTypesFirst) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if mapping, err := m.own.RESTMapping(gk, versions...); err == nil {
		return mapping, nil
	}
	return m.RESTMapper.RESTMapping(gk, versions...)
}

// RESTMappings implements meta.RESTMapper.
func (m ownTypesFirst) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	if mappings, err := m.own.RESTMappings(gk, versions...); err == nil && len(mappings) > 0 {
		return mappings, nil
	}
	return m.RESTMapper.RESTMappings(gk, versions...)
}
