-- Version 3: e-mail comparison keys. Existing accounts get theirs filled in by the server at
-- start-up (it needs Unicode tables SQL does not have); see db::users::missing_email_keys.
ALTER TABLE users ADD COLUMN email_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users(email_key);
