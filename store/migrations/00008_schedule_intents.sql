-- Schedules, row first: a slot's row is written before its child is created, so whoever's
-- insert wins the slot is the only one to act on it, and a crash between the two leaves a row
-- whose child is still to be created (child_uid NULL), never a child without a row.
--
-- background_task_schedule_revisions remembers when each schedule's expression took effect,
-- so an edited expression is planned from the edit, not from the old one's last slot.
-- NEVER edit this file once released: add a new numbered migration instead.

-- +goose Up
-- +goose StatementBegin
ALTER TABLE background_task_firings ADD COLUMN child_uid text;
-- Rows written before this migration were written after their child was created: they are
-- settled. '' is a child whose UID was not recorded.
UPDATE background_task_firings f SET child_uid = COALESCE(
    (SELECT b.uid FROM background_tasks b WHERE b.namespace = f.namespace AND b.name = f.task_name
     ORDER BY b.created_at DESC LIMIT 1), '')
WHERE outcome IN ('created', 'replaced');
ALTER TABLE background_task_firings ADD CONSTRAINT background_task_firings_child_uid
    CHECK (child_uid IS NULL OR outcome IN ('created', 'replaced'));
-- The rows whose child is still to be created: every look at a schedule reads them.
CREATE INDEX background_task_firings_unsettled ON background_task_firings (schedule_uid, slot)
    WHERE child_uid IS NULL AND outcome IN ('created', 'replaced');

CREATE TABLE background_task_schedule_revisions (
    schedule_uid   text        PRIMARY KEY CHECK (schedule_uid <> ''),
    namespace      text        NOT NULL CHECK (namespace <> ''),
    schedule       text        NOT NULL CHECK (schedule <> ''),
    -- generation is the TaskSchedule's metadata.generation this row was written for: a
    -- writer with an older view (a second leader's stale cache) never overwrites it.
    generation     bigint      NOT NULL CHECK (generation > 0),
    expression     text        NOT NULL,
    time_zone      text        NOT NULL,
    -- effective_from: slots after it are slots of this expression (the schedule's creation,
    -- or the first look after the expression or time zone was edited).
    effective_from timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_runtime') THEN
        -- A row's outcome is written once; the only later change is settling its child: the
        -- child's UID once created, or missed when the API server refused it.
        GRANT UPDATE (child_uid, outcome, reason, task_name) ON background_task_firings TO taskpilot_runtime;
        GRANT SELECT, INSERT, UPDATE ON background_task_schedule_revisions TO taskpilot_runtime;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_readonly') THEN
        GRANT SELECT ON background_task_schedule_revisions TO taskpilot_readonly;
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP TABLE background_task_schedule_revisions;
DROP INDEX background_task_firings_unsettled;
ALTER TABLE background_task_firings DROP CONSTRAINT background_task_firings_child_uid;
ALTER TABLE background_task_firings DROP COLUMN child_uid;
-- +goose StatementEnd
