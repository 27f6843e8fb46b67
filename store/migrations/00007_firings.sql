-- Schedule firings: one row per slot of a TaskSchedule, whatever became of it, so "what did
-- not run last night and why" is one query. The unique key on (schedule_uid, slot) makes a
-- slot's outcome a single row however many operators look at it; the child's name is derived
-- from the slot, so it cannot be created twice either.
-- NEVER edit this file once released: add a new numbered migration instead.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE background_task_firings (
    id            bigserial   PRIMARY KEY,
    schedule_uid  text        NOT NULL CHECK (schedule_uid <> ''),
    namespace     text        NOT NULL CHECK (namespace <> ''),
    schedule      text        NOT NULL CHECK (schedule <> ''),
    -- slot is the instant the schedule named (after time zone and DST resolution).
    slot          timestamptz NOT NULL,
    -- manual: a run requested now (kubectl taskpilot run-now), slot = the request's time.
    manual        boolean     NOT NULL DEFAULT false,
    -- outcome: created (a child was created), replaced (created after stopping the active
    -- children, concurrencyPolicy Replace), skipped (suspended, or Forbid with a run active),
    -- missed (no operator fired it in time; catchUp and startingDeadlineSeconds say why).
    outcome       text        NOT NULL CHECK (outcome IN ('created', 'replaced', 'skipped', 'missed')),
    reason        text        NOT NULL DEFAULT '',
    -- task_name is the BackgroundTask created for the slot ('' when none was).
    task_name     text        NOT NULL DEFAULT '',
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    recorded_by   text        NOT NULL DEFAULT '',
    CONSTRAINT background_task_firings_child CHECK ((outcome IN ('created', 'replaced')) = (task_name <> '')),
    CONSTRAINT background_task_firings_slot_key UNIQUE (schedule_uid, slot, manual)
);
CREATE INDEX background_task_firings_by_name ON background_task_firings (namespace, schedule, slot DESC);
CREATE INDEX background_task_firings_by_time ON background_task_firings (slot);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_runtime') THEN
        -- Append-only for the operator: a slot's outcome is never rewritten.
        GRANT SELECT, INSERT ON background_task_firings TO taskpilot_runtime;
        GRANT USAGE, SELECT ON SEQUENCE background_task_firings_id_seq TO taskpilot_runtime;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_readonly') THEN
        GRANT SELECT ON background_task_firings TO taskpilot_readonly;
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE background_task_firings;
