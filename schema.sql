-- ccjk-cloud: the complete, current schema (docs/architecture.md "Storage").
--
-- This file is what the binary applies to a fresh database (it is embedded with include_str!),
-- and the one place an admin reads to understand the data. Older files are brought forward by
-- the ordered steps in src/db/migrations.rs, keyed by PRAGMA user_version; a test checks that a
-- fresh database and an upgraded one end up with the same tables, columns and indexes.
--
-- Conventions
-- * Timestamps are RFC 3339 UTC text with milliseconds ('2026-01-20T10:00:00.000Z'): they sort
--   as text and read well in sqlite3.
-- * JSON columns carry CHECK (json_valid(col)).
-- * Credentials are never stored in plaintext: *_hash columns hold the SHA-256 of a token (32
--   bytes, used for lookup); *_sealed columns hold an XChaCha20-Poly1305 box (24-byte nonce ||
--   ciphertext) under the key in CCJK_SECRET_KEY_FILE, for the few values the API must show
--   again; password_hash is an argon2id PHC string.
-- * Every table is STRICT: a value of the wrong type is an error, not a silent conversion.
--
-- The connection pragmas (WAL, foreign_keys, synchronous, busy_timeout) are set by the server
-- on every connection (src/db/mod.rs); they are not persistent settings of the file.

-- Plans: the limits of each subscription level (Full's limits table). NULL means unlimited.
-- Admins edit rows directly; users.plan refers to plans.name.
CREATE TABLE IF NOT EXISTS plans (
    name                 TEXT PRIMARY KEY,
    max_devices          INTEGER,           -- devices per user
    max_tasks_per_day    INTEGER,           -- tasks created per UTC day
    max_concurrent_tasks INTEGER,           -- running tasks per user (shapes claims)
    storage_quota_bytes  INTEGER,           -- config backups + logs + KV values
    log_retention_days   INTEGER,           -- daemon logs older than this are deleted
    api_calls_per_minute INTEGER            -- rate limit for API keys
) STRICT;

INSERT OR IGNORE INTO plans VALUES
    ('free',       1,    10,   1,  1073741824,   7,   10),
    ('pro',        5,    100,  3,  10737418240,  30,  100),
    ('enterprise', NULL, NULL, 10, 107374182400, 90,  1000);

-- Users: people who own devices and tasks. Log in by email or username (both unique,
-- case-insensitive). The first account on a fresh server is an admin on 'enterprise'
-- (docs/limits.md).
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    username      TEXT UNIQUE COLLATE NOCASE,        -- optional login name
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,                     -- argon2id PHC string
    display_name  TEXT,
    avatar_url    TEXT,
    plan          TEXT NOT NULL DEFAULT 'free' REFERENCES plans(name) ON UPDATE CASCADE,
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),   -- 0 = disabled
    is_verified   INTEGER NOT NULL DEFAULT 0 CHECK (is_verified IN (0, 1)),
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    notify_email  INTEGER NOT NULL DEFAULT 0 CHECK (notify_email IN (0, 1)), -- mail task results
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    last_login_at TEXT,
    failed_logins INTEGER NOT NULL DEFAULT 0,        -- consecutive failed logins (reset on success)
    locked_until  TEXT,                              -- set while login is throttled (docs/security.md)
    email_key     TEXT                               -- comparison key: NFKC, case-folded, confusable
                                                     -- skeleton of email (look-alikes collide)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users(email_key);

-- Sessions: named logins (Sessions' "conversations"). A session has a bearer token (ccs_...)
-- and a refresh token (ccr_...). Rows stay after revocation (revoked_at) so an admin can see
-- what happened; the janitor never deletes them. Deleting a user deletes their sessions.
CREATE TABLE IF NOT EXISTS sessions (
    id                 INTEGER PRIMARY KEY,
    user_id            INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash         BLOB NOT NULL UNIQUE,   -- SHA-256 of the ccs_ token
    token_sealed       BLOB NOT NULL,          -- the token, sealed: Sessions' login returns it again
    refresh_hash       BLOB UNIQUE,            -- SHA-256 of the ccr_ refresh token
    name               TEXT,
    user_agent         TEXT,
    ip_address         TEXT,
    created_at         TEXT NOT NULL,
    last_used_at       TEXT NOT NULL,          -- kept current, at most one write per minute
    expires_at         TEXT,                   -- NULL unless CCJK_ACCESS_TOKEN_TTL is set
    refresh_expires_at TEXT,
    revoked_at         TEXT                    -- logout, password change, delete, idle TTL
) STRICT;
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id, last_used_at);

-- API keys (cck_...): long-lived credentials for scripts, limited to their scopes.
CREATE TABLE IF NOT EXISTS api_keys (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_prefix   TEXT NOT NULL,                 -- first characters of the key, shown in listings
    key_hash     BLOB NOT NULL UNIQUE,          -- SHA-256 of the key
    scopes       TEXT NOT NULL CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    last_used_at TEXT,
    expires_at   TEXT,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_id);

-- Devices: computers running the CCJK daemon. uuid is the public id; id is internal.
-- Each user has one primary device (named 'default', created at registration) whose key
-- Lite's POST /auth returns. machine_id is the daemon's X-Device-ID, unique per user, so that
-- registering again returns the same device and key.
CREATE TABLE IF NOT EXISTS devices (
    id                INTEGER PRIMARY KEY,
    uuid              TEXT NOT NULL UNIQUE,
    user_id           INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    machine_id        TEXT,
    is_primary        INTEGER NOT NULL DEFAULT 0 CHECK (is_primary IN (0, 1)),
    key_prefix        TEXT NOT NULL,
    key_hash          BLOB NOT NULL UNIQUE,     -- SHA-256 of the ccjk_ device key
    key_sealed        BLOB NOT NULL,            -- the key, sealed: POST /auth returns it again
    os_type           TEXT,
    os_version        TEXT,
    arch              TEXT,
    hostname          TEXT,
    ccjk_version      TEXT,
    status            TEXT NOT NULL DEFAULT 'offline'
                      CHECK (status IN ('online', 'offline', 'busy', 'error', 'maintenance')),
    config            TEXT NOT NULL DEFAULT '{"heartbeat_interval":30,"task_check_interval":10,"log_upload_enabled":true,"max_concurrent_tasks":3}'
                      CHECK (json_valid(config)),
    system_info       TEXT CHECK (system_info IS NULL OR json_valid(system_info)),
    ip_address        TEXT,
    metadata          TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    kv_password_hash  TEXT,                     -- argon2id PHC string; lets apps be authorised
    account_id        TEXT,
    last_heartbeat_at TEXT,
    last_sync_at      TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (user_id, machine_id)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS devices_primary ON devices(user_id) WHERE is_primary = 1;


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


-- ---------------------------------------------------------------------------------------------
-- E-mail (README "Mail"): settings, the outbound queue, inbound deliveries.
-- ---------------------------------------------------------------------------------------------

-- E-mail settings of a user (device_id NULL) or of one of their devices (Lite, Full). The API
-- writes them (POST /v1/email/config, Lite's POST /email/config); email_address is also an
-- address the user may mail commands from and send to (README "Mail"). The IMAP/SMTP fields
-- are kept for the daemons that read mail themselves; the server never logs in with them.
-- password_sealed is sealed under CCJK_SECRET_KEY_FILE and never returned. Kept until the
-- user, the device or the config is deleted.
CREATE TABLE IF NOT EXISTS email_configs (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id       INTEGER REFERENCES devices(id) ON DELETE CASCADE,  -- NULL = the user's own
    email_address   TEXT NOT NULL COLLATE NOCASE,
    imap_host       TEXT,
    imap_port       INTEGER CHECK (imap_port IS NULL OR imap_port BETWEEN 1 AND 65535),
    imap_secure     INTEGER NOT NULL DEFAULT 1 CHECK (imap_secure IN (0, 1)),
    smtp_host       TEXT,
    smtp_port       INTEGER CHECK (smtp_port IS NULL OR smtp_port BETWEEN 1 AND 65535),
    smtp_secure     INTEGER NOT NULL DEFAULT 1 CHECK (smtp_secure IN (0, 1)),
    username        TEXT,
    password_sealed BLOB,                               -- XChaCha20-Poly1305 box, never shown
    check_interval  INTEGER NOT NULL DEFAULT 30 CHECK (check_interval > 0), -- seconds
    is_active       INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    last_check_at   TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) STRICT;
-- One config per user and device (the user's own has device_id NULL).
CREATE UNIQUE INDEX IF NOT EXISTS email_configs_target ON email_configs(user_id, ifnull(device_id, 0));
CREATE INDEX IF NOT EXISTS email_configs_address ON email_configs(email_address) WHERE is_active = 1;

-- The durable outbound mail queue (README "Mail"). A row is written in the same transaction as
-- the event that caused it (a task's result, a device going offline, POST /v1/email/send) and
-- the mailer thread sends it through the relay. status: queued (waiting for its next attempt at
-- next_attempt_at) → sent | failed (a 4xx from the relay, or 10 attempts used up) | unsent (no
-- relay was configured when the mailer saw it; `ccjk-cloud outbox retry ID` queues it again).
-- idempotency_key is sent to relays that honour one. message_id is the notification the mail
-- carries (messages.sent_via_email is set once it is sent). The mailer deletes sent, failed and
-- unsent rows 90 days after their last change.
CREATE TABLE IF NOT EXISTS email_outbox (
    id                  INTEGER PRIMARY KEY,
    user_id             INTEGER REFERENCES users(id) ON DELETE CASCADE,  -- NULL: sent by an admin
    task_id             TEXT REFERENCES tasks(id) ON DELETE SET NULL,
    message_id          INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    kind                TEXT NOT NULL,             -- task_result, email_reply, device_offline, test, send
    to_address          TEXT NOT NULL,
    subject             TEXT NOT NULL,
    text                TEXT NOT NULL,
    html                TEXT,
    in_reply_to         TEXT,                      -- Message-ID this mail answers (threading)
    idempotency_key     TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'sent', 'failed', 'unsent')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TEXT NOT NULL,
    last_error          TEXT,                      -- the relay's answer or the transport error
    provider            TEXT,                      -- the relay that accepted or refused it
    provider_message_id TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    sent_at             TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS email_outbox_due ON email_outbox(next_attempt_at) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS email_outbox_user ON email_outbox(user_id, created_at);
CREATE INDEX IF NOT EXISTS email_outbox_task ON email_outbox(task_id) WHERE task_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS email_outbox_changed ON email_outbox(updated_at) WHERE status <> 'queued';

-- One row per delivery to the inbound-mail webhook (POST /email/incoming, /v1/email/incoming),
-- accepted or rejected, with the reason: bad_signature, missing_signature, stale_timestamp,
-- bad_json, unknown_sender, ambiguous_sender, no_prefix, unknown_device, ambiguous_device,
-- empty_command, invalid_command, quota_exceeded; status duplicate for a redelivered message_id
-- (the first delivery's outcome was answered, nothing was created). message_id is unique among
-- first deliveries. Rows refused before the signature verified carry no parsed field. The
-- mailer deletes rows after 90 days.
CREATE TABLE IF NOT EXISTS inbound_emails (
    id           INTEGER PRIMARY KEY,
    message_id   TEXT,
    from_address TEXT,
    subject      TEXT,
    user_id      INTEGER REFERENCES users(id) ON DELETE CASCADE,
    device_id    INTEGER REFERENCES devices(id) ON DELETE SET NULL,
    task_id      TEXT REFERENCES tasks(id) ON DELETE SET NULL,
    status       TEXT NOT NULL CHECK (status IN ('accepted', 'rejected', 'duplicate')),
    reason       TEXT,
    ip_address   TEXT,
    received_at  TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS inbound_emails_message ON inbound_emails(message_id)
    WHERE status <> 'duplicate' AND message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS inbound_emails_task ON inbound_emails(task_id) WHERE task_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS inbound_emails_received ON inbound_emails(received_at);

-- Messages: unread counts and listings.
CREATE INDEX IF NOT EXISTS messages_unread ON messages(user_id) WHERE read_at IS NULL;
-- ==========================================================================================
-- Config backups, daemon logs, statistics (schema version 5; README "Backups, logs and
-- statistics"). Retention: automatic backups beyond the newest 10 per device are pruned when a
-- new one is made; logs go after the plan's log_retention_days; finished tasks keep their
-- stdout/stderr for 30 days (domain::policy::TASK_OUTPUT_RETENTION), then the janitor clears them
-- (the row stays, for history and statistics).
-- ==========================================================================================
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
-- ---------------------------------------------------------------------------------------------
-- Apps and the KV store (schema version 6; README "Apps and the KV store")
-- ---------------------------------------------------------------------------------------------

-- Apps: third-party tools (editor extensions, dashboards, the CCJK tools themselves) that a
-- device's owner may authorise to keep settings and state in the device's key-value store
-- (README "Apps and the KV store"). Registered and deleted by admins with `ccjk-cloud app
-- create|delete`; kept until deleted (deleting an app deletes its installs, so its tokens die;
-- the keys it wrote stay with the device). site_key is not a secret: an app's pages send it as
-- x-site-key, and a request that carries one must match the token's app.
CREATE TABLE IF NOT EXISTS apps (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    description    TEXT,
    developer_name TEXT NOT NULL,
    developer_link TEXT,
    homepage_link  TEXT,
    icon_hash      TEXT,
    metadata       TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    site_key       TEXT NOT NULL UNIQUE,               -- 'site_' + 32 hex characters
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT;

-- App installs: one row per app token (cca_...), i.e. one authorisation of an app on a device
-- (POST /apps/{id}/authorize, by the device's owner or with its KV password). A device may hold
-- several installs of one app (a read-only and a read-write one, say). Revoking a token deletes
-- its row; deleting the device or the app deletes them too. Nothing else expires them.
CREATE TABLE IF NOT EXISTS app_installs (
    id           TEXT PRIMARY KEY,                     -- UUID v4: owners revoke by it
    device_id    INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    app_id       INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    token_prefix TEXT NOT NULL,                        -- first characters of the token, for listings
    token_hash   BLOB NOT NULL UNIQUE,                 -- SHA-256 of the cca_ token
    read_only    INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1)),
    note         TEXT,
    installed_at TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    last_used_at TEXT                                  -- kept current, at most one write per minute
) STRICT;
CREATE INDEX IF NOT EXISTS app_installs_device ON app_installs(device_id, installed_at);
CREATE INDEX IF NOT EXISTS app_installs_app ON app_installs(app_id);

-- The per-device key-value store: what authorised apps read and write with their tokens (and
-- owners list and delete from /v1). value is stored as sent, with the Content-Type it was sent
-- with. size_bytes = bytes of key + value (what the quotas count). version is the device's
-- revision at the entry's last write (kv_usage.revision): never reused, even after a delete, so
-- an If-Match from an earlier life of a key cannot match. An entry whose expires_at has passed
-- is invisible at once and deleted by the janitor in batches. Deleting the device deletes its
-- entries.
CREATE TABLE IF NOT EXISTS kv_entries (
    device_id    INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    key          TEXT NOT NULL,                        -- 1-512 bytes, see README "Keys"
    value        BLOB NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL CHECK (size_bytes >= 0),
    version      INTEGER NOT NULL,
    expires_at   TEXT,                                 -- NULL = never
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (device_id, key)
) STRICT;
CREATE INDEX IF NOT EXISTS kv_entries_expiry ON kv_entries(expires_at) WHERE expires_at IS NOT NULL;

-- Per-device totals of kv_entries (keys, bytes: what the per-device and plan quotas read without
-- scanning) and the device's KV revision (bumped by every write; the new entry's version). keys
-- and bytes are kept by the triggers below, so every statement that touches kv_entries (a
-- write, the janitor, a cascade) keeps them exact. Deleted with the device.
CREATE TABLE IF NOT EXISTS kv_usage (
    device_id INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    keys      INTEGER NOT NULL DEFAULT 0,
    bytes     INTEGER NOT NULL DEFAULT 0,
    revision  INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TRIGGER IF NOT EXISTS kv_entries_added AFTER INSERT ON kv_entries BEGIN
    INSERT OR IGNORE INTO kv_usage (device_id) VALUES (new.device_id);
    UPDATE kv_usage SET keys = keys + 1, bytes = bytes + new.size_bytes
        WHERE device_id = new.device_id;
END;
CREATE TRIGGER IF NOT EXISTS kv_entries_removed AFTER DELETE ON kv_entries BEGIN
    UPDATE kv_usage SET keys = keys - 1, bytes = bytes - old.size_bytes
        WHERE device_id = old.device_id;
END;
CREATE TRIGGER IF NOT EXISTS kv_entries_resized AFTER UPDATE OF size_bytes ON kv_entries
    WHEN new.size_bytes != old.size_bytes BEGIN
    UPDATE kv_usage SET bytes = bytes + new.size_bytes - old.size_bytes
        WHERE device_id = new.device_id;
END;

-- =============================================================================================
-- Vault (migration v7; docs/vault.md): the sites and accounts a user rotates between.
-- =============================================================================================

-- Sites: the API providers, relays and mirrors a user keeps accounts for (docs/vault.md). `key`
-- is chosen by the user and unique per user only: two users may both have 'openai'. Written by
-- the /v1 vault routes and `ccjk-cloud vault import`; kept until the user deletes the site or
-- the account. Deleting a site deletes its fields, accounts and active mapping.
CREATE TABLE IF NOT EXISTS sites (
    user_id             INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key                 TEXT NOT NULL,                    -- 'openai': [a-z0-9][a-z0-9._-]{0,63}
    name                TEXT NOT NULL,
    login_url           TEXT,
    allow_device_reveal INTEGER NOT NULL DEFAULT 0 CHECK (allow_device_reveal IN (0, 1)), -- daemons may reveal its active account's secrets
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT, WITHOUT ROWID;

-- Field schemas of a site: how its accounts' props are checked on every write and shown in a
-- UI. A site without rows here keeps any props. Written by PUT /v1/sites/{key}/fields (and on
-- site creation and import); replaced as a whole; deleted with the site.
CREATE TABLE IF NOT EXISTS site_fields (
    user_id       INTEGER NOT NULL,
    site_key      TEXT NOT NULL,
    field         TEXT NOT NULL,                          -- prop name: [A-Za-z_][A-Za-z0-9_]{0,63}
    type          TEXT NOT NULL CHECK (type IN ('string', 'number', 'boolean', 'datetime', 'json')),
    required      INTEGER NOT NULL DEFAULT 0 CHECK (required IN (0, 1)),
    default_value TEXT CHECK (default_value IS NULL OR json_valid(default_value)), -- the seed's `default`, as JSON
    regex         TEXT,                                   -- strings: must match (unanchored; Rust regex syntax)
    choices       TEXT CHECK (choices IS NULL OR (json_valid(choices) AND json_type(choices) = 'array')),
    secret        INTEGER NOT NULL DEFAULT 0 CHECK (secret IN (0, 1)), -- sealed at rest, masked, blind-indexed
    indexed       INTEGER NOT NULL DEFAULT 0 CHECK (indexed IN (0, 1)), -- plain prop with an expression index
    sort_order    INTEGER NOT NULL DEFAULT 0,
    ui_hint       TEXT,
    PRIMARY KEY (user_id, site_key, field),
    FOREIGN KEY (user_id, site_key) REFERENCES sites(user_id, key) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
-- Is this prop name secret in any of the user's sites (lookups); which props want an index.
CREATE INDEX IF NOT EXISTS site_fields_by_name ON site_fields(user_id, field, secret);
CREATE INDEX IF NOT EXISTS site_fields_indexed ON site_fields(field) WHERE indexed = 1;

-- Accounts: base fields (username, password) plus props. `extra` holds the plain props as a
-- JSON object (read them with json_extract(extra, '$.token')); the password and every secret
-- prop are sealed (XChaCha20-Poly1305 under CCJK_SECRET_KEY_FILE, associated data naming the
-- column or field and the account id), so no secret appears in this file in plaintext.
-- `secrets` maps each secret prop to its hex-encoded box. Written by the /v1 vault routes and
-- `vault import`; deleted by the user or with its site.
CREATE TABLE IF NOT EXISTS accounts (
    id              TEXT PRIMARY KEY,                     -- UUID v4
    user_id         INTEGER NOT NULL,
    site_key        TEXT NOT NULL,
    username        TEXT,
    password_sealed BLOB,                                 -- NULL: no password
    extra           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(extra) AND json_type(extra) = 'object'),
    secrets         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(secrets) AND json_type(secrets) = 'object'),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    FOREIGN KEY (user_id, site_key) REFERENCES sites(user_id, key) ON DELETE CASCADE
) STRICT;
-- A site's accounts (and the site's cascade); the expression indexes the seed names, per user.
-- Props a site's fields mark `indexed` get an index of the same shape, created and dropped by
-- the server as fields change: accounts_prop_<field>_<8 hex>.
CREATE INDEX IF NOT EXISTS accounts_site ON accounts(user_id, site_key, username);
CREATE INDEX IF NOT EXISTS accounts_expires_at ON accounts(user_id, json_extract(extra, '$.expiresAt'));
CREATE INDEX IF NOT EXISTS accounts_token ON accounts(user_id, json_extract(extra, '$.token'));

-- The active account of each site (at most one). Deleting that account leaves the row with
-- account_id NULL; deleting the site deletes the row. Written by PUT/DELETE
-- /v1/sites/{key}/active and `vault import`.
CREATE TABLE IF NOT EXISTS active_accounts (
    user_id    INTEGER NOT NULL,
    site_key   TEXT NOT NULL,
    account_id TEXT REFERENCES accounts(id) ON DELETE SET NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, site_key),
    FOREIGN KEY (user_id, site_key) REFERENCES sites(user_id, key) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS active_accounts_account ON active_accounts(account_id);

-- Blind index of secret props: one row per (account, secret prop) with HMAC-SHA256 of (user id,
-- prop name, value) under a key derived from the server key, so a lookup by a secret value
-- never stores or compares the value itself. Rewritten with every write of the account;
-- deleted with it.
CREATE TABLE IF NOT EXISTS account_secret_index (
    user_id    INTEGER NOT NULL,
    field      TEXT NOT NULL,
    mac        BLOB NOT NULL,                             -- 32 bytes
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, field, mac, account_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS account_secret_index_account ON account_secret_index(account_id);

-- Reveals: every time an account's secrets were shown unmasked (?reveal=true, a daemon reading
-- its owner's active accounts, a plaintext export): who (session, API key, device or the admin's
-- command line), when, which account, from which address. Listed by the owner with GET
-- /v1/vault/reveals. account_id is not a foreign key: the record outlives the account. The
-- janitor deletes rows older than 365 days; the rest go with the user.
CREATE TABLE IF NOT EXISTS account_reveals (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    site_key   TEXT NOT NULL,
    actor      TEXT NOT NULL CHECK (actor IN ('session', 'api_key', 'device', 'cli')),
    session_id INTEGER,                                   -- actor 'session'
    api_key_id INTEGER,                                   -- actor 'api_key'
    device_id  TEXT,                                      -- actor 'device': the device's uuid
    ip_address TEXT NOT NULL,                             -- client address, or 'cli'
    user_agent TEXT,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS account_reveals_user ON account_reveals(user_id, id);
CREATE INDEX IF NOT EXISTS account_reveals_account ON account_reveals(user_id, account_id, id);
CREATE INDEX IF NOT EXISTS account_reveals_created ON account_reveals(created_at);
