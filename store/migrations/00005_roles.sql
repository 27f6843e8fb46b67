-- Least privilege: the roles that use the schema, and what each may do.
-- NEVER edit this file once released: add a new numbered migration instead.
--
--   the owner (the role that runs this migration) owns the tables and migrates;
--   taskpilot_runtime (the operator): reads and writes rows and appends history, nothing more;
--     it cannot alter, drop, truncate or disable anything, delete or rewrite history, or
--     backdate a deletion; old history is purged only through taskpilot_purge_history;
--   taskpilot_readonly (the kubectl plugin, the web view, SQL users): reads.
-- Both are NOLOGIN group roles: grant them to login roles (docs/schema.md, "Roles"). An owner
-- without CREATEROLE cannot create them: the migration then says so (NOTICE) and grants to
-- whichever already exist; create them and run the operator again.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['taskpilot_runtime', 'taskpilot_readonly'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                -- Another database of the server made it meanwhile: roles are the server's, and a
                -- concurrent CREATE ROLE fails with either error.
                WHEN duplicate_object OR unique_violation THEN NULL;
                WHEN insufficient_privilege THEN
                    RAISE NOTICE 'taskpilot: cannot create role %: create it (NOLOGIN) and grant it to the operator''s or the readers'' login role', r;
            END;
        END IF;
    END LOOP;
END;
$$;

-- A deletion is stamped by the database and never moved: the retention purge counts from it.
-- The owner (and superusers) may still set it, for maintenance.
CREATE FUNCTION background_tasks_deleted_at_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER') THEN
        RETURN NEW;
    END IF;
    IF OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS DISTINCT FROM OLD.deleted_at THEN
        RAISE EXCEPTION 'background_tasks.deleted_at is set once, by the database'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        NEW.deleted_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER background_tasks_deleted_at_guard
    BEFORE UPDATE OF deleted_at ON background_tasks
    FOR EACH ROW EXECUTE FUNCTION background_tasks_deleted_at_guard();

-- The retention purge, the one deletion of history: rows soft-deleted before deleted_before
-- (at least an hour ago, so a task deleted by mistake can be restored from its history), at
-- most max_tasks of them, rows and history together, counted per day in
-- background_task_purges. It runs with the owner's rights (SECURITY DEFINER), so the runtime
-- role needs no DELETE on any table.
CREATE FUNCTION taskpilot_purge_history(deleted_before timestamptz, max_tasks integer,
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
REVOKE ALL ON FUNCTION taskpilot_purge_history(timestamptz, integer) FROM PUBLIC;

DO $$
DECLARE
    schema text := current_schema();
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_runtime') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO taskpilot_runtime', schema);
        GRANT SELECT, INSERT, UPDATE ON background_tasks TO taskpilot_runtime;
        GRANT SELECT, INSERT ON background_task_transitions TO taskpilot_runtime;
        GRANT SELECT ON background_task_purges, taskpilot_schema_version TO taskpilot_runtime;
        GRANT USAGE, SELECT ON SEQUENCE taskpilot_owner_epoch, background_tasks_id_seq,
            background_task_transitions_id_seq TO taskpilot_runtime;
        GRANT EXECUTE ON FUNCTION taskpilot_purge_history(timestamptz, integer) TO taskpilot_runtime;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_readonly') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO taskpilot_readonly', schema);
        GRANT SELECT ON background_tasks, background_task_transitions, background_task_purges,
            taskpilot_schema_version TO taskpilot_readonly;
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION taskpilot_purge_history(timestamptz, integer);
DROP TRIGGER background_tasks_deleted_at_guard ON background_tasks;
DROP FUNCTION background_tasks_deleted_at_guard();
-- +goose StatementEnd
