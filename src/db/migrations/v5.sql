-- Schema version 5: config backups, daemon log uploads, and what statistics and retention read
-- (README "Backups, logs and statistics"). schema.sql carries the same definitions for fresh
-- databases, in the section headed "Config backups, daemon logs, statistics".

-- Config backups: a JSON document (a daemon's CCJK configuration) kept for its owner.
-- config_json is the raw text of the document as the client sent it: a restore returns it byte
-- for byte. Written by POST /v1/config/backup and Lite's POST /config/backup (a person, or the
-- device itself with its key); deleted by the owner, with the user, and, for automatic backups
-- (is_auto = 1), beyond the newest 10 per device (domain::policy::AUTO_BACKUPS_KEPT). A deleted
-- device leaves its backups (device_id NULL) so they can be restored on a new machine.
-- size_bytes counts against the plan's storage_quota_bytes.
CREATE TABLE IF NOT EXISTS config_backups (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id   INTEGER REFERENCES devices(id) ON DELETE SET NULL,
    name        TEXT NOT NULL,
    config_json TEXT NOT NULL CHECK (json_valid(config_json)),
    size_bytes  INTEGER NOT NULL CHECK (size_bytes >= 0),      -- bytes of config_json
    is_auto     INTEGER NOT NULL DEFAULT 0 CHECK (is_auto IN (0, 1)),
    created_at  TEXT NOT NULL
) STRICT;
-- Listings and the storage sum (covering: size_bytes is in the index).
CREATE INDEX IF NOT EXISTS config_backups_user ON config_backups(user_id, created_at, size_bytes);
-- A device's backups (listing by device, pruning automatic ones, ON DELETE SET NULL).
CREATE INDEX IF NOT EXISTS config_backups_device ON config_backups(device_id, is_auto, created_at);

-- Daemon logs: files a daemon uploaded (POST /v1/daemon/logs, multipart), kept as BLOBs of at
-- most CCJK_MAX_LOG_UPLOAD bytes and served back as stored (gzip stays gzip). Written by the
-- device; read by its owner; deleted by the janitor once older than the plan's
-- log_retention_days, with the device and with the user. content is the last column so that
-- reading the others never walks the BLOB's overflow pages. size_bytes counts against the
-- plan's storage_quota_bytes.
CREATE TABLE IF NOT EXISTS daemon_logs (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id    INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    log_type     TEXT NOT NULL,                              -- metadata.type: 'daemon', 'task', ...
    log_date     TEXT NOT NULL,                              -- metadata.date: the day it covers
    compressed   INTEGER NOT NULL DEFAULT 0 CHECK (compressed IN (0, 1)),  -- gzip data
    content_type TEXT NOT NULL,                              -- served as Content-Type
    size_bytes   INTEGER NOT NULL CHECK (size_bytes >= 0),
    created_at   TEXT NOT NULL,
    content      BLOB NOT NULL
) STRICT;
-- A device's logs, newest first.
CREATE INDEX IF NOT EXISTS daemon_logs_device ON daemon_logs(device_id, created_at);
-- Retention (per user, oldest first) and the storage sum (covering).
CREATE INDEX IF NOT EXISTS daemon_logs_user ON daemon_logs(user_id, created_at, size_bytes);

-- Statistics read finished tasks by the UTC day they finished (substr(completed_at, 1, 10))
-- and how long they ran (completed_at - started_at in milliseconds, NULL when never started).
-- This index stores both expressions, so a 90-day summary reads one index range, in day order,
-- and no task row; db::stats writes the same expressions in its query.
CREATE INDEX IF NOT EXISTS tasks_user_finished ON tasks(
    user_id,
    substr(completed_at, 1, 10),
    completed_at,
    status,
    max(0, CAST(round((unixepoch(completed_at, 'subsec') - unixepoch(started_at, 'subsec')) * 1000) AS INTEGER)),
    claimed_by
) WHERE completed_at IS NOT NULL;
-- Retention of finished tasks' output: the oldest finished tasks that still hold output.
CREATE INDEX IF NOT EXISTS tasks_output_age ON tasks(completed_at)
    WHERE completed_at IS NOT NULL AND (stdout IS NOT NULL OR stderr IS NOT NULL);
