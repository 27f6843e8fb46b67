package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// A task's place in its queue (background_tasks.queue_state).
const (
	// QueueWaiting: the task asked its queue for a place and waits for it.
	QueueWaiting = "waiting"
	// QueueAdmitted: the task holds a place, from its admission until its run pauses or ends.
	QueueAdmitted = "admitted"
)

// Queue is one row of background_task_queues: what a TaskQueue allows, as the elected operator
// wrote it from the object's spec.
type Queue struct {
	Namespace   string `gorm:"column:namespace;primaryKey"`
	Name        string `gorm:"column:name;primaryKey"`
	UID         string `gorm:"column:uid"`
	Concurrency int    `gorm:"column:concurrency"`
	Paused      bool   `gorm:"column:paused"`
	// PausedUntil ends a pause by itself (nil: until Paused is false).
	PausedUntil *time.Time `gorm:"column:paused_until"`
	FairnessKey string     `gorm:"column:fairness_key"`
	// Weights maps a tenant (a fairness label value) to its share (default 1), as JSON.
	Weights json.RawMessage `gorm:"column:weights"`
	// RatePerSecond is nil without a rate limit; RateBurst is the bucket's size.
	RatePerSecond *float64   `gorm:"column:rate_per_second"`
	RateBurst     int        `gorm:"column:rate_burst"`
	Tokens        float64    `gorm:"column:tokens"`
	TokensAt      *time.Time `gorm:"column:tokens_at"`
	AgingSeconds  float64    `gorm:"column:aging_seconds"`
	Admitted      int64      `gorm:"column:admitted"`
	UpdatedAt     time.Time  `gorm:"column:updated_at"`
}

// TableName is part of the public SQL contract.
func (Queue) TableName() string { return "background_task_queues" }

// pausedAt reports whether the queue admits nothing at now.
func (q *Queue) pausedAt(now time.Time) bool {
	return q.Paused && (q.PausedUntil == nil || now.Before(*q.PausedUntil))
}

// tokensAt is the rate limit's bucket at now (refilled since TokensAt, at most RateBurst).
func (q *Queue) tokensAt(now time.Time) float64 {
	if q.RatePerSecond == nil {
		return math.Inf(1)
	}
	if q.TokensAt == nil {
		return float64(q.RateBurst)
	}
	return min(float64(q.RateBurst), q.Tokens+max(now.Sub(*q.TokensAt).Seconds(), 0)*(*q.RatePerSecond))
}

// SaveQueue writes a queue's row from its spec (insert or update). A new row, or a changed rate
// limit, starts with a full bucket.
func (r *Repository) SaveQueue(ctx context.Context, q Queue, now time.Time) error {
	if q.Namespace == "" || q.Name == "" || q.UID == "" || q.Concurrency <= 0 || q.RateBurst <= 0 || q.AgingSeconds <= 0 {
		return fmt.Errorf("save queue %s/%s: namespace, name, uid, concurrency, burst and aging are required: %w", q.Namespace, q.Name, ErrInvalidArgument)
	}
	if len(q.Weights) == 0 {
		q.Weights = json.RawMessage("{}")
	}
	q.Tokens, q.TokensAt, q.UpdatedAt = float64(q.RateBurst), &now, now
	err := r.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "namespace"}, {Name: "name"}},
		DoUpdates: clause.Set{
			{Column: clause.Column{Name: "uid"}, Value: q.UID},
			{Column: clause.Column{Name: "concurrency"}, Value: q.Concurrency},
			{Column: clause.Column{Name: "paused"}, Value: q.Paused},
			{Column: clause.Column{Name: "paused_until"}, Value: q.PausedUntil},
			{Column: clause.Column{Name: "fairness_key"}, Value: q.FairnessKey},
			{Column: clause.Column{Name: "weights"}, Value: q.Weights},
			{Column: clause.Column{Name: "rate_per_second"}, Value: q.RatePerSecond},
			{Column: clause.Column{Name: "rate_burst"}, Value: q.RateBurst},
			{Column: clause.Column{Name: "aging_seconds"}, Value: q.AgingSeconds},
			{Column: clause.Column{Name: "updated_at"}, Value: now},
			// A changed rate limit starts with a full bucket; an unchanged one keeps its tokens.
			{Column: clause.Column{Name: "tokens"}, Value: gorm.Expr(`CASE WHEN background_task_queues.rate_per_second IS DISTINCT FROM excluded.rate_per_second
				OR background_task_queues.rate_burst <> excluded.rate_burst THEN excluded.tokens ELSE background_task_queues.tokens END`)},
			{Column: clause.Column{Name: "tokens_at"}, Value: gorm.Expr(`CASE WHEN background_task_queues.rate_per_second IS DISTINCT FROM excluded.rate_per_second
				OR background_task_queues.rate_burst <> excluded.rate_burst THEN excluded.tokens_at ELSE background_task_queues.tokens_at END`)},
		},
	}).Omit("admitted").Create(&q).Error
	if err != nil {
		return fmt.Errorf("save queue %s/%s: %w", q.Namespace, q.Name, err)
	}
	return nil
}

// DeleteQueue removes a queue's row (its TaskQueue was deleted): its tasks wait until a queue
// of that name exists again. Only the row of that object (uid) is removed.
func (r *Repository) DeleteQueue(ctx context.Context, namespace, name, uid string) error {
	if err := r.db.WithContext(ctx).Exec(`DELETE FROM background_task_queues WHERE namespace = ? AND name = ? AND uid = ?`,
		namespace, name, uid).Error; err != nil {
		return fmt.Errorf("delete queue %s/%s: %w", namespace, name, err)
	}
	return nil
}

// Queues lists every queue row.
func (r *Repository) Queues(ctx context.Context) ([]Queue, error) {
	var out []Queue
	if err := r.db.WithContext(ctx).Order("namespace, name").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	return out, nil
}

// QueueAsk is a task's request for a place in its queue.
type QueueAsk struct {
	UID   string
	Owner Owner
	// Queue is the queue's name, in the task's namespace; Priority and FairValue (its tenant)
	// order it among the waiting tasks.
	Queue     string
	Priority  int
	FairValue string
	At        time.Time
}

// askQueueSQL asks for a place (or keeps the one held in that queue): a task that asks again
// keeps its place in line, one that changed queues starts waiting anew in the new one.
const askQueueSQL = `
UPDATE background_tasks SET
    queue_state         = CASE WHEN queue_state = 'admitted' AND queue = @queue THEN 'admitted' ELSE 'waiting' END,
    queue_waiting_since = CASE WHEN queue_state = '' OR queue <> @queue THEN CAST(@at AS timestamptz) ELSE queue_waiting_since END,
    queue               = @queue,
    priority            = @priority,
    fair_value          = @fair_value
WHERE uid = @uid AND owner_epoch = @epoch AND deleted_at IS NULL
RETURNING queue_state`

// AskQueue asks the task's queue for a place and says whether it holds one (true: it may
// start). Only the task's owner may ask (ErrFenced otherwise, as for transitions).
func (r *Repository) AskQueue(ctx context.Context, a QueueAsk) (bool, error) {
	if a.UID == "" || a.Queue == "" || a.Owner.Epoch == 0 {
		return false, fmt.Errorf("ask queue %q for %s: %w", a.Queue, a.UID, ErrInvalidArgument)
	}
	var states []string
	if err := r.db.WithContext(ctx).Raw(askQueueSQL, map[string]any{
		"uid": a.UID, "epoch": a.Owner.Epoch, "queue": a.Queue, "priority": a.Priority, "fair_value": a.FairValue, "at": a.At,
	}).Scan(&states).Error; err != nil {
		return false, fmt.Errorf("ask queue %q for %s: %w", a.Queue, a.UID, err)
	}
	if len(states) == 0 {
		return false, r.diagnose(ctx, a.UID, a.Owner, "ask queue "+a.Queue, func(diagnosis) bool { return false }, 0)
	}
	return states[0] == QueueAdmitted, nil
}

// LeaveQueue gives back a waiting task's request or an unused place (its owner no longer wants
// to start it: paused before it started, its spec names no queue any more), and forgets its
// queue when forget is set. A task whose record is Running keeps its place: its transitions
// give it back.
func (r *Repository) LeaveQueue(ctx context.Context, uid string, owner Owner, forget bool) error {
	err := r.db.WithContext(ctx).Exec(`UPDATE background_tasks SET queue_state = '',
    queue = CASE WHEN ? THEN '' ELSE queue END
WHERE uid = ? AND owner_epoch = ? AND status <> 'RUNNING' AND deleted_at IS NULL AND (queue_state <> '' OR (? AND queue <> ''))`,
		forget, uid, owner.Epoch, forget).Error
	if err != nil {
		return fmt.Errorf("leave the queue of %s: %w", uid, err)
	}
	return nil
}

// Admission is the outcome of one admission round of a queue.
type Admission struct {
	// Missing: no queue of that name exists (its tasks wait until one does).
	Missing bool
	// Paused: the queue admits nothing now; Until is when it resumes by itself (nil: when
	// someone resumes it).
	Paused bool
	Until  *time.Time
	// Concurrency is the queue's limit; Running the places taken after this round; Waiting
	// the tasks still waiting.
	Concurrency, Running, Waiting int
	// RateLimited: places were free but the rate limit's bucket was empty; NextToken is when
	// the next start is allowed.
	RateLimited bool
	NextToken   time.Time
	// Granted are the tasks this round admitted, of any owner.
	Granted []string
	// Mine are the tasks of the asking owner that hold a place (admitted by any replica's
	// round): those waiting to start may start. MineWaiting are its tasks still waiting.
	Mine, MineWaiting []string
}

// admitSQL gives the free places to the best waiting tasks. Order: the fairness turn first (a
// tenant's k-th waiting task comes after every tenant's places taken plus k-1, divided by its
// weight: round-robin between tenants, in proportion to their weights), then the effective
// priority (priority plus one per aging_seconds waited), then first come first served.
const admitSQL = `
WITH running AS (
    SELECT fair_value, count(*) AS n FROM background_tasks
    WHERE namespace = @namespace AND queue = @queue AND queue_state = 'admitted' AND queue <> '' AND deleted_at IS NULL
    GROUP BY fair_value
), waiting AS (
    SELECT uid, fair_value, queue_waiting_since,
           priority + floor(extract(epoch FROM (CAST(@now AS timestamptz) - queue_waiting_since)) / @aging) AS effective
    FROM background_tasks
    WHERE namespace = @namespace AND queue = @queue AND queue_state = 'waiting' AND queue <> '' AND deleted_at IS NULL
), ranked AS (
    SELECT w.uid, w.effective, w.queue_waiting_since,
           (coalesce(r.n, 0) + row_number() OVER (PARTITION BY w.fair_value ORDER BY w.effective DESC, w.queue_waiting_since, w.uid) - 1)
             / greatest(coalesce(CAST(CAST(@weights AS jsonb) ->> w.fair_value AS double precision), 1), 1) AS turn
    FROM waiting w LEFT JOIN running r ON r.fair_value = w.fair_value
), chosen AS (
    SELECT uid FROM ranked ORDER BY turn, effective DESC, queue_waiting_since, uid LIMIT @free
)
UPDATE background_tasks t SET queue_state = 'admitted', queue_admitted_at = CAST(@now AS timestamptz)
FROM chosen
-- Re-checked on the row as it is now: a task that moved to another queue meanwhile (asking does
-- not take this queue's lock) is not admitted under this one's count.
WHERE t.uid = chosen.uid AND t.queue_state = 'waiting' AND t.namespace = @namespace AND t.queue = @queue AND t.deleted_at IS NULL
RETURNING t.uid`

// Admit runs one admission round of a queue, in one transaction that holds the queue row's
// lock, so rounds of every replica serialise and the places taken never exceed the
// concurrency: it counts the places taken, gives the free ones (within the pause and the rate
// limit) to the best waiting tasks of any owner, and lists the tasks of me that hold a place
// and have not started yet. now is the operator's clock (pausedUntil and the rate limit).
func (r *Repository) Admit(ctx context.Context, namespace, queue string, me Owner, now time.Time) (Admission, error) {
	var out Admission
	err := r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		out = Admission{}
		var q Queue
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("namespace = ? AND name = ?", namespace, queue).Take(&q).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			out.Missing = true
			return tx.Raw(`SELECT count(*) FROM background_tasks WHERE namespace = ? AND queue = ? AND queue_state = 'waiting' AND deleted_at IS NULL`,
				namespace, queue).Scan(&out.Waiting).Error
		}
		if err != nil {
			return err
		}
		out.Concurrency = q.Concurrency
		var counts struct{ Running, Waiting int }
		if err := tx.Raw(`SELECT count(*) FILTER (WHERE queue_state = 'admitted') AS running, count(*) FILTER (WHERE queue_state = 'waiting') AS waiting
FROM background_tasks WHERE namespace = ? AND queue = ? AND queue <> '' AND deleted_at IS NULL`, namespace, queue).Scan(&counts).Error; err != nil {
			return err
		}
		out.Running, out.Waiting = counts.Running, counts.Waiting
		free := max(q.Concurrency-counts.Running, 0)
		if q.pausedAt(now) {
			out.Paused, out.Until, free = true, q.PausedUntil, 0
		}
		tokens := q.tokensAt(now)
		if free > 0 && counts.Waiting > 0 && tokens < 1 {
			out.RateLimited = true
			out.NextToken = now.Add(time.Duration((1 - tokens) / *q.RatePerSecond * float64(time.Second)))
		}
		free = min(free, counts.Waiting, int(math.Min(tokens, float64(math.MaxInt32))))
		if free > 0 {
			weights := q.Weights
			if len(weights) == 0 {
				weights = json.RawMessage("{}")
			}
			if err := tx.Raw(admitSQL, map[string]any{
				"namespace": namespace, "queue": queue, "now": now, "aging": q.AgingSeconds, "weights": string(weights), "free": free,
			}).Scan(&out.Granted).Error; err != nil {
				return err
			}
			out.Running += len(out.Granted)
			out.Waiting -= len(out.Granted)
			if len(out.Granted) > 0 {
				update := map[string]any{"admitted": gorm.Expr("admitted + ?", len(out.Granted))}
				if q.RatePerSecond != nil {
					update["tokens"], update["tokens_at"] = max(tokens-float64(len(out.Granted)), 0), now
				}
				if err := tx.Model(&Queue{}).Where("namespace = ? AND name = ?", namespace, queue).Updates(update).Error; err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return Admission{}, fmt.Errorf("admit from queue %s/%s: %w", namespace, queue, err)
	}
	var mine []struct {
		UID        string
		QueueState string
	}
	if err := r.db.WithContext(ctx).Raw(`SELECT uid, queue_state FROM background_tasks
WHERE namespace = ? AND queue = ? AND queue_state <> '' AND owner_epoch = ? AND deleted_at IS NULL`,
		namespace, queue, me.Epoch).Scan(&mine).Error; err != nil {
		return Admission{}, fmt.Errorf("the tasks of queue %s/%s: %w", namespace, queue, err)
	}
	for _, m := range mine {
		if m.QueueState == QueueAdmitted {
			out.Mine = append(out.Mine, m.UID)
		} else {
			out.MineWaiting = append(out.MineWaiting, m.UID)
		}
	}
	return out, nil
}

// QueueStats is what a queue holds, for its status and metrics.
type QueueStats struct {
	Running, Pending, Paused int
	AdmittedLastMinute       int
	// OldestWaitingSince is when the longest-waiting task began to wait (nil: none waits).
	OldestWaitingSince *time.Time
	// Admitted counts every start the queue allowed (0 when it has no row).
	Admitted int64
}

// QueueStats reads what a queue holds now.
func (r *Repository) QueueStats(ctx context.Context, namespace, queue string, now time.Time) (QueueStats, error) {
	var s QueueStats
	if err := r.db.WithContext(ctx).Raw(`SELECT
    count(*) FILTER (WHERE queue_state = 'admitted') AS running,
    count(*) FILTER (WHERE queue_state = 'waiting') AS pending,
    count(*) FILTER (WHERE status = 'PAUSED') AS paused,
    count(*) FILTER (WHERE queue_admitted_at > CAST(? AS timestamptz) - interval '1 minute') AS admitted_last_minute,
    min(queue_waiting_since) FILTER (WHERE queue_state = 'waiting') AS oldest_waiting_since,
    (SELECT coalesce(max(admitted), 0) FROM background_task_queues WHERE namespace = ? AND name = ?) AS admitted
FROM background_tasks WHERE namespace = ? AND queue = ? AND queue <> '' AND deleted_at IS NULL`,
		now, namespace, queue, namespace, queue).Scan(&s).Error; err != nil {
		return QueueStats{}, fmt.Errorf("stats of queue %s/%s: %w", namespace, queue, err)
	}
	return s, nil
}
