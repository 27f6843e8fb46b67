-- Queues (TaskQueue): a row per queue, written from its spec by the elected operator, and the
-- task row's place in its queue. PostgreSQL decides every admission: a start takes a place only
-- in a transaction that holds the queue row's lock and counts the places taken, so a limit
-- holds across every replica. Adding NOT NULL columns with constant defaults rewrites nothing;
-- the partial index covers queued rows only.
-- NEVER edit this file once released: add a new numbered migration instead.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE background_task_queues (
    namespace        text             NOT NULL CHECK (namespace <> ''),
    name             text             NOT NULL CHECK (name <> ''),
    -- uid is the TaskQueue object's: a queue deleted and created again is another queue.
    uid              text             NOT NULL CHECK (uid <> ''),
    concurrency      integer          NOT NULL CHECK (concurrency > 0),
    paused           boolean          NOT NULL DEFAULT false,
    -- paused_until: a paused queue admits again from then on (NULL: until paused is false).
    paused_until     timestamptz,
    -- fairness_key is the label naming a task's tenant ('' : no fairness); weights maps a
    -- tenant (label value) to its share (default 1).
    fairness_key     text             NOT NULL DEFAULT '',
    weights          jsonb            NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(weights) = 'object'),
    -- The rate limit, a token bucket: rate_per_second NULL means none.
    rate_per_second  double precision CHECK (rate_per_second IS NULL OR rate_per_second > 0),
    rate_burst       integer          NOT NULL DEFAULT 1 CHECK (rate_burst > 0),
    tokens           double precision NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    tokens_at        timestamptz,
    -- aging_seconds: a waiting task gains one priority per this many seconds of waiting.
    aging_seconds    double precision NOT NULL DEFAULT 60 CHECK (aging_seconds > 0),
    -- admitted counts every start the queue allowed.
    admitted         bigint           NOT NULL DEFAULT 0 CHECK (admitted >= 0),
    updated_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);

ALTER TABLE background_tasks
    -- queue is the TaskQueue (in the task's namespace) the task last asked a place of.
    ADD COLUMN queue               text        NOT NULL DEFAULT '',
    ADD COLUMN priority            integer     NOT NULL DEFAULT 0,
    -- fair_value is the task's tenant: the value of its queue's fairness label.
    ADD COLUMN fair_value          text        NOT NULL DEFAULT '',
    -- queue_state: '' (no place asked or held), waiting (asked), admitted (holds a place:
    -- from its admission until its run pauses or ends).
    ADD COLUMN queue_state         text        NOT NULL DEFAULT ''
        CONSTRAINT background_tasks_queue_state CHECK (queue_state IN ('', 'waiting', 'admitted')),
    -- When the task last began to wait, and when it was last admitted (kept after the place
    -- is given back, for wait-time queries).
    ADD COLUMN queue_waiting_since timestamptz,
    ADD COLUMN queue_admitted_at   timestamptz,
    ADD CONSTRAINT background_tasks_queue_named CHECK (queue_state = '' OR queue <> ''),
    ADD CONSTRAINT background_tasks_queue_waited CHECK (queue_state = '' OR queue_waiting_since IS NOT NULL);

CREATE INDEX background_tasks_by_queue ON background_tasks (namespace, queue, queue_state)
    WHERE queue <> '' AND deleted_at IS NULL;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_runtime') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON background_task_queues TO taskpilot_runtime;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_readonly') THEN
        GRANT SELECT ON background_task_queues TO taskpilot_readonly;
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP INDEX background_tasks_by_queue;
ALTER TABLE background_tasks
    DROP COLUMN queue, DROP COLUMN priority, DROP COLUMN fair_value, DROP COLUMN queue_state,
    DROP COLUMN queue_waiting_since, DROP COLUMN queue_admitted_at;
DROP TABLE background_task_queues;
-- +goose StatementEnd
