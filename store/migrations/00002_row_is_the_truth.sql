-- Everything a lifecycle decision needs is in the row, and every writer is fenced.
-- NEVER edit this file once released: add a new numbered migration instead.
--
-- New columns of background_tasks:
--   reason                       the reason of the latest transition (decides whether a
--                                failure may be retried, also after a restart of the operator)
--   observed_restart_generation  the highest spec.restartGeneration honoured; NULL on rows
--                                written before this migration until an operator adopts them
--   retries                      retries scheduled since the last attempt that was not a retry
--   retry_at                     when a scheduled retry may start (PENDING rows only)
--   owner, owner_epoch           the operator process that runs the task and its fencing token;
--                                every write of that process is guarded by owner_epoch
-- New columns of background_task_transitions: owner_epoch (who wrote it), restart_generation
-- and retry_at (so that replaying a history rebuilds the row).

-- +goose Up
-- +goose StatementBegin
CREATE SEQUENCE taskpilot_owner_epoch AS bigint;

ALTER TABLE background_tasks
    ADD COLUMN reason                      text    NOT NULL DEFAULT '',
    ADD COLUMN observed_restart_generation bigint,
    ADD COLUMN retries                     integer NOT NULL DEFAULT 0,
    ADD COLUMN retry_at                    timestamptz,
    ADD COLUMN owner                       text,
    ADD COLUMN owner_epoch                 bigint;

-- Rows of the previous version: the reason of their latest transition, and the retries the
-- previous version counted (every attempt after the first).
UPDATE background_tasks t
SET reason = h.reason,
    retries = greatest(t.attempt - 1, 0),
    retry_at = CASE WHEN t.status = 'PENDING' AND h.reason = 'RetryScheduled' THEN h.at END
FROM background_task_transitions h
WHERE h.task_uid = t.uid AND h.seq = t.last_seq;

ALTER TABLE background_tasks
    ADD CONSTRAINT background_tasks_observed_restart_generation_check CHECK (observed_restart_generation >= 0),
    ADD CONSTRAINT background_tasks_retries_check CHECK (retries >= 0),
    ADD CONSTRAINT background_tasks_owner_check CHECK ((owner IS NULL) = (owner_epoch IS NULL)),
    ADD CONSTRAINT background_tasks_retry_at_check CHECK (retry_at IS NULL OR status = 'PENDING'),
    -- A result belongs to a finished run. NOT VALID: enforced for every write from now on
    -- without scanning rows written before.
    ADD CONSTRAINT background_tasks_result_check CHECK (result IS NULL OR status = 'FINISHED') NOT VALID;

CREATE INDEX background_tasks_owner_idx ON background_tasks (owner_epoch) WHERE deleted_at IS NULL;

ALTER TABLE background_task_transitions
    ADD COLUMN owner_epoch        bigint,
    ADD COLUMN restart_generation bigint NOT NULL DEFAULT 0,
    ADD COLUMN retry_at           timestamptz,
    ADD CONSTRAINT background_task_transitions_restart_generation_check CHECK (restart_generation >= 0);
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
ALTER TABLE background_task_transitions
    DROP COLUMN retry_at, DROP COLUMN restart_generation, DROP COLUMN owner_epoch;
DROP INDEX background_tasks_owner_idx;
ALTER TABLE background_tasks
    DROP COLUMN owner_epoch, DROP COLUMN owner, DROP COLUMN retry_at, DROP COLUMN retries,
    DROP COLUMN observed_restart_generation, DROP COLUMN reason;
DROP SEQUENCE taskpilot_owner_epoch;
-- +goose StatementEnd
