-- Version 4: e-mail — configs, the durable outbox, inbound webhook deliveries, and an index for
-- unread messages (README "Mail").

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
