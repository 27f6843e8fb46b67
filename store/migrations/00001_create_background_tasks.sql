-- Initial schema. NEVER edit this file once released: add a new numbered
-- migration instead (see docs/schema.md, "Migrations").

-- +goose Up
-- +goose StatementBegin
CREATE TABLE background_tasks (
    id                 bigserial   PRIMARY KEY,
    uid                text        NOT NULL,
    namespace          text        NOT NULL DEFAULT '',
    name               text        NOT NULL DEFAULT '',
    task_name          text        NOT NULL,
    status             text        NOT NULL,
    desired_state      text        NOT NULL DEFAULT 'RUNNING',
    attempt            integer     NOT NULL DEFAULT 0,
    progress           text        NOT NULL DEFAULT '',
    message            text        NOT NULL DEFAULT '',
    result             jsonb,
    checkpoint         jsonb,
    checkpoint_attempt integer,
    last_seq           bigint      NOT NULL DEFAULT 0,
    start_time         timestamptz,
    end_time           timestamptz,
    last_run_time      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,

    CONSTRAINT background_tasks_uid_key UNIQUE (uid),
    CONSTRAINT background_tasks_uid_not_empty CHECK (uid <> ''),
    CONSTRAINT background_tasks_task_name_not_empty CHECK (task_name <> ''),
    CONSTRAINT background_tasks_status_check
        CHECK (status IN ('PENDING', 'RUNNING', 'PAUSED', 'FINISHED', 'FAILED', 'STOPPED')),
    CONSTRAINT background_tasks_desired_state_check
        CHECK (desired_state IN ('RUNNING', 'PAUSED', 'STOPPED')),
    CONSTRAINT background_tasks_attempt_check CHECK (attempt >= 0),
    CONSTRAINT background_tasks_last_seq_check CHECK (last_seq >= 0),
    CONSTRAINT background_tasks_progress_size CHECK (char_length(progress) <= 64),
    CONSTRAINT background_tasks_message_size CHECK (char_length(message) <= 4096),
    CONSTRAINT background_tasks_result_size CHECK (octet_length(result::text) <= 65536),
    CONSTRAINT background_tasks_checkpoint_size CHECK (octet_length(checkpoint::text) <= 65536),
    CONSTRAINT background_tasks_checkpoint_attempt_check
        CHECK ((checkpoint IS NULL) = (checkpoint_attempt IS NULL)),
    CONSTRAINT background_tasks_end_time_check
        CHECK ((end_time IS NOT NULL) = (status IN ('FINISHED', 'FAILED', 'STOPPED')))
);

CREATE INDEX background_tasks_status_idx ON background_tasks (status) WHERE deleted_at IS NULL;
CREATE INDEX background_tasks_task_name_idx ON background_tasks (task_name);
CREATE INDEX background_tasks_namespace_name_idx ON background_tasks (namespace, name);
CREATE INDEX background_tasks_updated_at_idx ON background_tasks (updated_at);

CREATE TABLE background_task_transitions (
    id          bigserial   PRIMARY KEY,
    task_uid    text        NOT NULL REFERENCES background_tasks (uid),
    seq         bigint      NOT NULL,
    from_status text,
    to_status   text        NOT NULL,
    attempt     integer     NOT NULL,
    reason      text        NOT NULL,
    message     text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL,

    CONSTRAINT background_task_transitions_task_uid_seq_key UNIQUE (task_uid, seq),
    CONSTRAINT background_task_transitions_seq_check CHECK (seq >= 1),
    CONSTRAINT background_task_transitions_from_status_check
        CHECK (from_status IN ('PENDING', 'RUNNING', 'PAUSED', 'FINISHED', 'FAILED', 'STOPPED')),
    CONSTRAINT background_task_transitions_to_status_check
        CHECK (to_status IN ('PENDING', 'RUNNING', 'PAUSED', 'FINISHED', 'FAILED', 'STOPPED')),
    -- seq 1 is the creation record (NULL -> PENDING); every later one has a from_status.
    CONSTRAINT background_task_transitions_first_check
        CHECK ((seq = 1) = (from_status IS NULL) AND (seq <> 1 OR to_status = 'PENDING')),
    CONSTRAINT background_task_transitions_attempt_check CHECK (attempt >= 0),
    CONSTRAINT background_task_transitions_message_size CHECK (char_length(message) <= 4096)
);

CREATE INDEX background_task_transitions_at_idx ON background_task_transitions (at);
CREATE INDEX background_task_transitions_to_status_at_idx ON background_task_transitions (to_status, at);

-- History is append-only. UPDATE, DELETE and TRUNCATE are rejected unless the
-- session deliberately opts in for a purge:
--   BEGIN; SET LOCAL taskpilot.allow_history_purge = 'on'; DELETE ...; COMMIT;
CREATE FUNCTION background_task_transitions_append_only() RETURNS trigger
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

CREATE TRIGGER background_task_transitions_append_only
    BEFORE UPDATE OR DELETE ON background_task_transitions
    FOR EACH ROW EXECUTE FUNCTION background_task_transitions_append_only();

CREATE TRIGGER background_task_transitions_no_truncate
    BEFORE TRUNCATE ON background_task_transitions
    FOR EACH STATEMENT EXECUTE FUNCTION background_task_transitions_append_only();
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP TABLE background_task_transitions;
DROP FUNCTION background_task_transitions_append_only();
DROP TABLE background_tasks;
-- +goose StatementEnd
