package witness

import "context"

// MarkTwice records step of an execution twice, as an insert retried after its commit does.
func (r *Recorder) MarkTwice(ctx context.Context, uid, execID string, step int) error {
	e := &execution{r: r, uid: uid, attempt: 1, id: execID}
	if err := e.insertUntil(ctx, KindStart, 0, nil, ""); err != nil {
		return err
	}
	if err := e.mark(ctx, step); err != nil {
		return err
	}
	return e.mark(ctx, step)
}
