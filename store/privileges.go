package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// runtimePrivileges are what the operator's role needs (the grants of RuntimeRole in the
// migrations; docs/schema.md, "Roles"): kind of object, object, privileges.
func runtimePrivileges() [][3]string {
	return [][3]string{
		{"table", "background_tasks", "SELECT, INSERT, UPDATE"},
		{"table", "background_task_transitions", "SELECT, INSERT"},
		{"table", "background_task_firings", "SELECT, INSERT"},
		{"table", "background_task_schedule_revisions", "SELECT, INSERT, UPDATE"},
		{"table", "taskpilot_members", "SELECT, INSERT, UPDATE, DELETE"},
		{"table", "background_task_queues", "SELECT, INSERT, UPDATE, DELETE"},
		{"table", "background_task_purges", "SELECT"},
		{"table", "background_task_items", "SELECT, INSERT, UPDATE"},
		{"table", "background_task_item_transitions", "SELECT, INSERT"},
		{"sequence", "taskpilot_owner_epoch", "USAGE"},
		{"sequence", "background_tasks_id_seq", "USAGE"},
		{"sequence", "background_task_transitions_id_seq", "USAGE"},
		{"sequence", "background_task_firings_id_seq", "USAGE"},
		{"function", "taskpilot_purge_history(timestamptz, integer)", "EXECUTE"},
	}
}

// MissingPrivilege is a privilege the operator's role lacks.
type MissingPrivilege struct {
	Role, Kind, Object, Privilege string
}

func (m MissingPrivilege) String() string {
	return fmt.Sprintf("role %q lacks %s on %s %s", m.Role, m.Privilege, m.Kind, m.Object)
}

// MissingPrivileges lists what the connected role lacks of what the operator needs, on the
// objects that exist (before the schema is migrated there is nothing to lack). A role that is a
// member of taskpilot_runtime lacks nothing.
func (r *Repository) MissingPrivileges(ctx context.Context) ([]MissingPrivilege, error) {
	var role string
	if err := r.db.WithContext(ctx).Raw("SELECT current_user").Scan(&role).Error; err != nil {
		return nil, fmt.Errorf("who am I: %w", err)
	}
	var missing []MissingPrivilege
	for _, p := range runtimePrivileges() {
		kind, object, privileges := p[0], p[1], p[2]
		for _, priv := range strings.Split(privileges, ", ") {
			var exists, has bool
			var q string
			switch kind {
			case "table":
				q = "SELECT to_regclass($1) IS NOT NULL, to_regclass($1) IS NOT NULL AND has_table_privilege($1, $2)"
			case "sequence":
				q = "SELECT to_regclass($1) IS NOT NULL, to_regclass($1) IS NOT NULL AND has_sequence_privilege($1, $2)"
			case "function":
				q = "SELECT to_regprocedure($1) IS NOT NULL, to_regprocedure($1) IS NOT NULL AND has_function_privilege($1, $2)"
			}
			row := r.sqlDB.QueryRowContext(ctx, q, object, priv)
			if err := row.Scan(&exists, &has); err != nil {
				return nil, fmt.Errorf("check %s on %s: %w", priv, object, err)
			}
			if exists && !has {
				missing = append(missing, MissingPrivilege{Role: role, Kind: kind, Object: object, Privilege: priv})
			}
		}
	}
	return missing, nil
}

// PrivilegeError reports whether err is PostgreSQL refusing this repository's role something
// (SQLSTATE 42501, insufficient_privilege), and says so in words an operator on call acts on,
// naming the role and what it was refused: it is not an outage, and retrying will not mend
// it; a grant will.
func (r *Repository) PrivilegeError(err error) (string, bool) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		return "", false
	}
	return fmt.Sprintf("PostgreSQL refuses role %q: %s; the operator's role must be a member of %s "+
		"(GRANT %s TO %s; docs/schema.md, \"Roles\")", r.role, pe.Message, RuntimeRole, RuntimeRole, quoteIdent(r.role)), true
}

// quoteIdent quotes a role name for SQL.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
