package controllers

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskpilot/taskpilot/store"
)

// privilegeCheck tells whether the operator's database role has what the operator needs
// (store.MissingPrivileges), and counts what it lacks in taskpilot_database_missing_privileges.
type privilegeCheck struct {
	store   *store.Repository
	missing prometheus.Gauge
}

func newPrivilegeCheck(repo *store.Repository) *privilegeCheck {
	return &privilegeCheck{store: repo, missing: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "taskpilot_database_missing_privileges",
		Help: "Privileges the operator needs that its PostgreSQL role lacks (0 once it is a member of taskpilot_runtime), as of the last check (start-up, /readyz).",
	})}
}

// check says what the role lacks ("" when nothing), naming the role, the privileges and the
// grant that mends it.
func (p *privilegeCheck) check(ctx context.Context) (string, error) {
	missing, err := p.store.MissingPrivileges(ctx)
	if err != nil {
		return "", err
	}
	p.missing.Set(float64(len(missing)))
	if len(missing) == 0 {
		return "", nil
	}
	var what []string
	for i, m := range missing {
		if i == 3 {
			what = append(what, fmt.Sprintf("and %d more", len(missing)-3))
			break
		}
		what = append(what, m.Privilege+" on "+m.Kind+" "+m.Object)
	}
	return fmt.Sprintf("PostgreSQL role %q lacks privileges the operator needs (%s): grant it %s "+
		"(GRANT %s TO %q; docs/schema.md, \"Roles\")", missing[0].Role, strings.Join(what, ", "),
		store.RuntimeRole, store.RuntimeRole, missing[0].Role), nil
}
