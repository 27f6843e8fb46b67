-- Every row carries the restart generation it honours: rows created before the column existed
-- start from 0, like a new task (no operator took it from anywhere else).
-- NEVER edit this file once released: add a new numbered migration instead.

-- +goose Up
-- +goose StatementBegin
UPDATE background_tasks SET observed_restart_generation = 0 WHERE observed_restart_generation IS NULL;
ALTER TABLE background_tasks
    ALTER COLUMN observed_restart_generation SET DEFAULT 0,
    ALTER COLUMN observed_restart_generation SET NOT NULL;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
ALTER TABLE background_tasks
    ALTER COLUMN observed_restart_generation DROP NOT NULL,
    ALTER COLUMN observed_restart_generation DROP DEFAULT;
-- +goose StatementEnd
