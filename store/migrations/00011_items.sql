-- Items (spec.items): one BackgroundTask, many units of work. Each item is a row of its own,
-- with its state, its executions and its history, so a million items cost the API server
-- nothing and cost PostgreSQL one narrow row each. Items are never deleted by the operator (its
-- role has no DELETE): a restart resets them; they go with their task when its history is
-- purged (ON DELETE CASCADE).
-- NEVER edit this file once released: add a new numbered migration instead.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE background_task_items (
    task_uid      text        NOT NULL REFERENCES background_tasks (uid) ON DELETE CASCADE,
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
    PRIMARY KEY (task_uid, idx, seq),
    FOREIGN KEY (task_uid, idx) REFERENCES background_task_items (task_uid, idx) ON DELETE CASCADE
);

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
DROP TABLE background_task_item_transitions;
DROP TABLE background_task_items;
-- +goose StatementEnd
