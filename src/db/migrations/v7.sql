-- Version 7: the Vault (docs/vault.md) — sites, field schemas, accounts with sealed secrets,
-- the active account of each site, the blind index of secret props and the record of reveals.

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
