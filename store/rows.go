package store

import (
	"database/sql"

	"gorm.io/gorm"
)

// scanAll runs db's statement and scans each row into a T with scan. Statements whose
// parameters carry task data (messages, results, item errors) use it instead of gorm's Scan,
// which logs the statement with its parameters rendered in (its recorder ignores
// ParamsFilter); Rows logs it as Exec does, with placeholders.
func scanAll[T any](db *gorm.DB, scan func(*sql.Rows, *T) error) ([]T, error) {
	rows, err := db.Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
