-- Tracing: the row keeps the W3C traceparent of the task's latest traced execution, so the next
-- execution (after a crash, a move to another replica, a retry) links its span to it. '' when
-- no execution was traced. Adding a NOT NULL column with a constant default rewrites nothing.
-- NEVER edit this file once released: add a new numbered migration instead.

-- +goose Up
-- +goose StatementBegin
ALTER TABLE background_tasks ADD COLUMN run_span text NOT NULL DEFAULT ''
    CONSTRAINT background_tasks_run_span_traceparent
    CHECK (run_span = '' OR run_span ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$');
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
ALTER TABLE background_tasks DROP COLUMN run_span;
-- +goose StatementEnd
