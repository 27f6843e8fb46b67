package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// slowQuery is the duration above which a statement is logged at Info.
const slowQuery = 200 * time.Millisecond

// gormLogger adapts GORM logging to logr. Failed statements log at V(1)
// only: the error is returned to the caller, who decides whether it matters.
type gormLogger struct{ log logr.Logger }

var _ logger.Interface = gormLogger{}

func newGormLogger(log logr.Logger) gormLogger { return gormLogger{log: log.WithName("sql")} }

func (l gormLogger) LogMode(logger.LogLevel) logger.Interface { return l }

func (l gormLogger) Info(_ context.Context, msg string, args ...any) {
	l.log.V(1).Info(fmt.Sprintf(msg, args...))
}

func (l gormLogger) Warn(_ context.Context, msg string, args ...any) {
	l.log.Info(fmt.Sprintf(msg, args...))
}

func (l gormLogger) Error(_ context.Context, msg string, args ...any) {
	l.log.Error(nil, fmt.Sprintf(msg, args...))
}

func (l gormLogger) Trace(_ context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	switch {
	case err != nil && !errors.Is(err, gorm.ErrRecordNotFound) && l.log.V(1).Enabled():
		sql, rows := fc()
		l.log.V(1).Info("statement failed", "error", err.Error(), "sql", sql, "rows", rows, "elapsed", elapsed)
	case elapsed > slowQuery:
		sql, rows := fc()
		l.log.Info("slow statement", "sql", sql, "rows", rows, "elapsed", elapsed)
	case l.log.V(2).Enabled():
		sql, rows := fc()
		l.log.V(2).Info("statement", "sql", sql, "rows", rows, "elapsed", elapsed)
	}
}

// ParamsFilter (gorm.ParamsFilter) keeps statement parameters out of every log line: they are
// task data (results, checkpoints, error messages), possibly large or confidential, so logged
// SQL shows its placeholders only.
func (l gormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}
