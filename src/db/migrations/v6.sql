-- Schema version 6: apps, their installs (app tokens) and the per-device key-value store
-- (README "Apps and the KV store"). schema.sql carries the same definitions for fresh databases.
-- It touches none of the tables of versions 4 (e-mail) and 5 (backups, logs, statistics).

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
