package taskdb

import "context"

// ExecForTest runs a statement on the reader's pool (tests check its sessions cannot write).
func (d *DB) ExecForTest(ctx context.Context, sql string) error {
	_, err := d.pool.Exec(ctx, sql)
	return err
}
