-- The console's accounts, their sessions, login failures, API tokens and the audit log.
CREATE TABLE admin_accounts (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    password_hash TEXT NOT NULL,                  -- Argon2id, PHC string
    created_us    INTEGER NOT NULL,
    changed_us    INTEGER NOT NULL                -- the password's last change
);

CREATE TABLE admin_sessions (
    hash         BLOB PRIMARY KEY,                -- BLAKE3 of the session id; the id is only in the cookie
    account_id   INTEGER NOT NULL REFERENCES admin_accounts (id) ON DELETE CASCADE,
    created_us   INTEGER NOT NULL,
    last_used_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX admin_sessions_account ON admin_sessions (account_id);

CREATE TABLE login_failures (
    id     INTEGER PRIMARY KEY,
    key    TEXT NOT NULL,                         -- 'account:NAME' or 'client:ADDRESS-HASH'
    at_us  INTEGER NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, at_us);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    hash         BLOB NOT NULL UNIQUE,            -- BLAKE3 of the token
    created_us   INTEGER NOT NULL,
    last_used_us INTEGER
);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,
    at_us  INTEGER NOT NULL,
    actor  TEXT NOT NULL,                         -- an account or token name, 'admin.token', or 'cli'
    via    TEXT NOT NULL CHECK (via IN ('console', 'api', 'cli')),
    action TEXT NOT NULL,                         -- e.g. 'article.update', 'subscriber.suppress'
    target TEXT,                                  -- what it acted on: a slug, an address, a query
    detail TEXT
);
CREATE INDEX audit_log_target ON audit_log (target, id);
