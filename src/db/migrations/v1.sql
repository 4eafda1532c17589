-- Schema version 1, frozen: the baseline that migrations start from (src/db/migrations.rs).
-- Never edit this file; change schema.sql and add a step instead.
--
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
-- case-insensitive). The first account on a fresh server is an admin on 'enterprise' (docs/limits.md).
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
    locked_until  TEXT                               -- set while login is throttled (docs/security.md)
) STRICT;

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
