-- Lifecycle policies: since when a task is in its status (pause timeout), history retention.
-- NEVER edit this file once released: add a new numbered migration instead.

-- +goose Up
-- +goose StatementBegin
ALTER TABLE background_tasks ADD COLUMN transitioned_at timestamptz;
UPDATE background_tasks t SET transitioned_at = h.at
FROM background_task_transitions h
WHERE h.task_uid = t.uid AND h.seq = t.last_seq;

-- Purges of old history, one row per day, for SQL users ("purged per day").
CREATE TABLE background_task_purges (
    day   date   PRIMARY KEY,
    tasks bigint NOT NULL DEFAULT 0,
    transitions bigint NOT NULL DEFAULT 0
);

-- History stays append-only. The one exception is the retention purge: in a transaction that
-- opts in (SET LOCAL taskpilot.allow_history_purge = 'on'), the transitions of a task whose
-- row is soft-deleted may be deleted. Nothing may ever be updated or truncated.
CREATE OR REPLACE FUNCTION background_task_transitions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND coalesce(current_setting('taskpilot.allow_history_purge', true), '') = 'on'
       AND EXISTS (SELECT 1 FROM background_tasks t WHERE t.uid = OLD.task_uid AND t.deleted_at IS NOT NULL) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'background_task_transitions is append-only (% rejected)', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'only the history of soft-deleted tasks may be purged, in a transaction that runs SET LOCAL taskpilot.allow_history_purge = ''on''';
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION background_task_transitions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('taskpilot.allow_history_purge', true), '') = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'background_task_transitions is append-only (% rejected)', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'to purge history: SET LOCAL taskpilot.allow_history_purge = ''on'' in the purging transaction';
END;
$$;
DROP TABLE background_task_purges;
ALTER TABLE background_tasks DROP COLUMN transitioned_at;
-- +goose StatementEnd
