-- Items (spec.items): one BackgroundTask, many units of work. Each item is a row of its own,
-- with its state, its executions and its history, so a million items cost the API server
-- nothing and cost PostgreSQL one narrow row each. Items are never deleted by the operator (its
-- role has no DELETE): a restart resets them; taskpilot_purge_history deletes them with their
-- task's history.
--
-- No foreign keys: their per-row checks were a third of the cost of seeding, claiming and
-- recording items (store BenchmarkItems). Every item write is fenced by its task's row instead
-- (the row must exist, be owned by the writer and not be deleted; the row is locked FOR SHARE
-- meanwhile), and the purge deletes items and their history before the task.
-- NEVER edit this file once released: add a new numbered migration instead.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE background_task_items (
    task_uid      text        NOT NULL,
    -- idx is the item's index: 0..count-1, or its place in spec.items.list.
    idx           integer     NOT NULL CHECK (idx >= 0),
    -- value is the list's element (NULL for counted items).
    value         jsonb,
    state         text        NOT NULL DEFAULT 'pending'
        CONSTRAINT background_task_items_state CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    -- executions started (a claim), and how many of them failed (retried while
    -- failures <= spec.items.maxRetries).
    executions    integer     NOT NULL DEFAULT 0 CHECK (executions >= 0),
    failures      integer     NOT NULL DEFAULT 0 CHECK (failures >= 0 AND failures <= executions),
    -- generation is the task's restart generation the item belongs to: a restart resets it.
    generation    bigint      NOT NULL DEFAULT 0 CHECK (generation >= 0),
    -- task_attempt is the task's attempt that last claimed it; owner_epoch the fencing token
    -- of the process that did.
    task_attempt  integer     NOT NULL DEFAULT 0 CHECK (task_attempt >= 0),
    owner_epoch   bigint,
    -- error is the last failure's message ('' : none).
    error         text        NOT NULL DEFAULT '',
    started_at    timestamptz,
    finished_at   timestamptz,
    -- seq is the number of the item's last transition (0: seeded, none yet).
    seq           integer     NOT NULL DEFAULT 0 CHECK (seq >= 0),
    PRIMARY KEY (task_uid, idx),
    CONSTRAINT background_task_items_running_claimed CHECK (state <> 'running' OR (started_at IS NOT NULL AND owner_epoch IS NOT NULL)),
    CONSTRAINT background_task_items_ended CHECK (state NOT IN ('succeeded', 'failed') OR finished_at IS NOT NULL)
);

-- The claim reads pending items of a task in index order. No index on (task_uid, state): the
-- planner would pick it for the claim and sort every pending item (O(items) per claim), and
-- counting a task's items reads them all through the primary key anyway.
CREATE INDEX background_task_items_pending ON background_task_items (task_uid, idx) WHERE state = 'pending';

-- One row per item transition, numbered per item without gaps (seq), written in the statement
-- that changes the item.
CREATE TABLE background_task_item_transitions (
    task_uid      text        NOT NULL,
    idx           integer     NOT NULL,
    seq           integer     NOT NULL CHECK (seq > 0),
    from_state    text        NOT NULL CHECK (from_state IN ('pending', 'running', 'succeeded', 'failed')),
    to_state      text        NOT NULL CHECK (to_state IN ('pending', 'running', 'succeeded', 'failed')),
    -- execution is the item's execution the transition belongs to (1 for the first).
    execution     integer     NOT NULL CHECK (execution >= 0),
    task_attempt  integer     NOT NULL CHECK (task_attempt >= 0),
    reason        text        NOT NULL DEFAULT '',
    message       text        NOT NULL DEFAULT '',
    at            timestamptz NOT NULL,
    owner_epoch   bigint,
    PRIMARY KEY (task_uid, idx, seq)
);

-- The purge deletes a task's items and their history too (see taskpilot_purge_history in
-- 00005_roles.sql; only the two item DELETEs are new).
CREATE OR REPLACE FUNCTION taskpilot_purge_history(deleted_before timestamptz, max_tasks integer,
                                                   OUT tasks bigint, OUT transitions bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    uids text[];
BEGIN
    IF deleted_before > now() - interval '1 hour' THEN
        RAISE EXCEPTION 'history is purged at least an hour after its task was deleted (asked: deleted before %)', deleted_before
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(uid) INTO uids FROM (
        SELECT uid FROM background_tasks WHERE deleted_at < deleted_before
        ORDER BY deleted_at LIMIT max_tasks FOR UPDATE SKIP LOCKED) s;
    tasks := 0;
    transitions := 0;
    IF uids IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('taskpilot.allow_history_purge', 'on', true);
    DELETE FROM background_task_item_transitions WHERE task_uid = ANY (uids);
    DELETE FROM background_task_items WHERE task_uid = ANY (uids);
    DELETE FROM background_task_transitions WHERE task_uid = ANY (uids);
    GET DIAGNOSTICS transitions = ROW_COUNT;
    DELETE FROM background_tasks WHERE uid = ANY (uids);
    GET DIAGNOSTICS tasks = ROW_COUNT;
    PERFORM set_config('taskpilot.allow_history_purge', '', true);
    INSERT INTO background_task_purges (day, tasks, transitions) VALUES (current_date, tasks, transitions)
    ON CONFLICT (day) DO UPDATE SET tasks = background_task_purges.tasks + EXCLUDED.tasks,
                                    transitions = background_task_purges.transitions + EXCLUDED.transitions;
END;
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_runtime') THEN
        GRANT SELECT, INSERT, UPDATE ON background_task_items TO taskpilot_runtime;
        -- Item history is appended to, never changed.
        GRANT SELECT, INSERT ON background_task_item_transitions TO taskpilot_runtime;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_readonly') THEN
        GRANT SELECT ON background_task_items, background_task_item_transitions TO taskpilot_readonly;
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
-- The purge as 00005_roles.sql made it.
CREATE OR REPLACE FUNCTION taskpilot_purge_history(deleted_before timestamptz, max_tasks integer,
                                                   OUT tasks bigint, OUT transitions bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    uids text[];
BEGIN
    IF deleted_before > now() - interval '1 hour' THEN
        RAISE EXCEPTION 'history is purged at least an hour after its task was deleted (asked: deleted before %)', deleted_before
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(uid) INTO uids FROM (
        SELECT uid FROM background_tasks WHERE deleted_at < deleted_before
        ORDER BY deleted_at LIMIT max_tasks FOR UPDATE SKIP LOCKED) s;
    tasks := 0;
    transitions := 0;
    IF uids IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('taskpilot.allow_history_purge', 'on', true);
    DELETE FROM background_task_transitions WHERE task_uid = ANY (uids);
    GET DIAGNOSTICS transitions = ROW_COUNT;
    DELETE FROM background_tasks WHERE uid = ANY (uids);
    GET DIAGNOSTICS tasks = ROW_COUNT;
    PERFORM set_config('taskpilot.allow_history_purge', '', true);
    INSERT INTO background_task_purges (day, tasks, transitions) VALUES (current_date, tasks, transitions)
    ON CONFLICT (day) DO UPDATE SET tasks = background_task_purges.tasks + EXCLUDED.tasks,
                                    transitions = background_task_purges.transitions + EXCLUDED.transitions;
END;
$$;
DROP TABLE background_task_item_transitions;
DROP TABLE background_task_items;
-- +goose StatementEnd
