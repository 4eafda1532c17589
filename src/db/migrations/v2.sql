-- Schema version 2: the task queue (tasks), per-day device uptime and notifications (messages).
-- schema.sql carries the same definitions for fresh databases.

-- Tasks: shell commands queued by a person for one of their daemons (docs/tasks.md).
-- status: queued (waiting for its predecessor in a sequential batch) → pending (claimable) →
-- running (claimed; a daemon holds the attempt until lease_expires_at) → completed | failed |
-- cancelled | timeout. any_device = 1: created for any of the owner's devices (device_id NULL);
-- a task whose device was deleted also has device_id NULL but any_device = 0 and is never
-- handed to another device. claimed_by is the device
-- that holds (or last held) an attempt; lease_expires_at IS NOT NULL exactly while a daemon
-- holds one (a running task, or a cancelled one whose daemon has not acknowledged the cancel).
CREATE TABLE IF NOT EXISTS tasks (
    id                  TEXT PRIMARY KEY,                 -- UUID v4, URL-safe
    user_id             INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id           INTEGER REFERENCES devices(id) ON DELETE SET NULL,
    any_device          INTEGER NOT NULL DEFAULT 0 CHECK (any_device IN (0, 1)), -- created for any device
    session_id          INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
    batch_id            TEXT,
    depends_on          TEXT REFERENCES tasks(id) ON DELETE SET NULL,
    parent_task_id      TEXT REFERENCES tasks(id) ON DELETE SET NULL,
    type                TEXT NOT NULL DEFAULT 'bash' CHECK (type IN ('bash', 'workflow', 'custom')),
    command             TEXT NOT NULL,
    args                TEXT CHECK (args IS NULL OR json_valid(args)),
    cwd                 TEXT,
    env                 TEXT CHECK (env IS NULL OR json_valid(env)),
    status              TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                        ('queued', 'pending', 'running', 'completed', 'failed', 'cancelled', 'timeout')),
    priority            INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    timeout_ms          INTEGER NOT NULL DEFAULT 300000 CHECK (timeout_ms > 0),
    max_retries         INTEGER NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 10),
    retry_count         INTEGER NOT NULL DEFAULT 0,
    attempt             INTEGER NOT NULL DEFAULT 0,       -- +1 on every claim
    claimed_by          INTEGER REFERENCES devices(id) ON DELETE SET NULL,
    progress            INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    exit_code           INTEGER,
    stdout              TEXT,                             -- capped at CCJK_MAX_OUTPUT
    stderr              TEXT,
    error_message       TEXT,
    source              TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'cli', 'web', 'email')),
    idempotency_key     TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    started_at          TEXT,
    completed_at        TEXT,
    lease_expires_at    TEXT,
    cancel_requested_at TEXT,
    UNIQUE (user_id, idempotency_key)
) STRICT;
-- Claims: a device's pending tasks, and its owner's device-less ones, by priority then age.
CREATE INDEX IF NOT EXISTS tasks_pending_device ON tasks(device_id, priority DESC, created_at)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS tasks_pending_any ON tasks(user_id, priority DESC, created_at)
    WHERE status = 'pending' AND any_device = 1;
-- Held attempts per device (running counts, cancels to deliver) and lease expiry.
CREATE INDEX IF NOT EXISTS tasks_held ON tasks(claimed_by) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_lease ON tasks(lease_expires_at) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_user_running ON tasks(user_id) WHERE status = 'running';
-- Listings and the tasks-per-day quota.
CREATE INDEX IF NOT EXISTS tasks_user_created ON tasks(user_id, created_at);
CREATE INDEX IF NOT EXISTS tasks_session ON tasks(session_id) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_depends ON tasks(depends_on) WHERE depends_on IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_batch ON tasks(batch_id) WHERE batch_id IS NOT NULL;

-- Seconds each device was online, per UTC day (Lite's uptime_hours; docs/tasks.md). A heartbeat
-- adds the time since the previous one, at most 2 × heartbeat_interval per gap.
CREATE TABLE IF NOT EXISTS device_uptime (
    device_id      INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    day            TEXT NOT NULL,                         -- '2026-01-20'
    online_seconds INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, day)
) STRICT, WITHOUT ROWID;

-- Notifications for a user: task_completed, task_failed, device_online, device_offline, ...
CREATE TABLE IF NOT EXISTS messages (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    task_id        TEXT REFERENCES tasks(id) ON DELETE CASCADE,
    device_id      INTEGER REFERENCES devices(id) ON DELETE SET NULL,
    type           TEXT NOT NULL,
    title          TEXT NOT NULL,
    content        TEXT,
    data           TEXT CHECK (data IS NULL OR json_valid(data)),
    read_at        TEXT,
    sent_via_email INTEGER NOT NULL DEFAULT 0 CHECK (sent_via_email IN (0, 1)),
    sent_via_push  INTEGER NOT NULL DEFAULT 0 CHECK (sent_via_push IN (0, 1)),
    created_at     TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS messages_user ON messages(user_id, created_at);
