// Package taskdb reads taskpilot's records from PostgreSQL for people: a task's row, its
// transition history and counts of tasks by phase over time.
//
// It uses only the public schema documented in docs/schema.md, with plain SQL over pgx, and
// never the operator's store package: the schema is the contract, so these queries keep
// working against any operator version that honours it. Columns only ever get added to that
// schema; a task's row is therefore read as a column → value map (to_jsonb), so a column added
// by a newer operator shows up in JSON output at once, and showing it in a table is one line
// where the table's columns are listed.
package taskdb
