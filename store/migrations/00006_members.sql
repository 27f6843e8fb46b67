-- Membership in PostgreSQL: each operator process that owns tasks has a row here beside its
-- Kubernetes Lease, renewed with the database's own clock. A process keeps its tasks while it
-- can renew either; another may claim them only once both expired (claimSQL checks this row in
-- the same statement). So an API server outage, or a database failover, stops nothing.
-- NEVER edit this file once released: add a new numbered migration instead.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE taskpilot_members (
    -- epoch is the fencing token the process took from taskpilot_owner_epoch: one row a process.
    epoch       bigint      PRIMARY KEY,
    identity    text        NOT NULL CHECK (identity <> ''),
    deployment  text        NOT NULL CHECK (deployment <> ''),
    joined_at   timestamptz NOT NULL DEFAULT now(),
    renewed_at  timestamptz NOT NULL DEFAULT now(),
    -- expires_at = renewed_at + the lease duration, both the database's clock: no node's clock
    -- is compared with another's.
    expires_at  timestamptz NOT NULL,
    -- released_at: the process stopped every run and gave its tasks up (a clean shutdown).
    released_at timestamptz,
    CONSTRAINT taskpilot_members_expiry CHECK (expires_at >= renewed_at)
);
CREATE INDEX taskpilot_members_identity ON taskpilot_members (identity, epoch DESC);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_runtime') THEN
        -- DELETE only to forget processes that ended more than a day ago.
        GRANT SELECT, INSERT, UPDATE, DELETE ON taskpilot_members TO taskpilot_runtime;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskpilot_readonly') THEN
        GRANT SELECT ON taskpilot_members TO taskpilot_readonly;
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE taskpilot_members;
