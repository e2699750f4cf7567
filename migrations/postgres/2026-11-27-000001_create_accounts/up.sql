-- The PostgreSQL twin of migrations/sqlite/2026-11-27-000001_create_accounts.
-- Player accounts: one row per login name.
CREATE TABLE accounts (
    id SERIAL PRIMARY KEY,
    -- The name as the player typed it when creating the account.
    name TEXT NOT NULL,
    -- The name lower-cased: the unique key, so "Bob" and "bob" are one account.
    -- Names are ASCII, so lower() agrees with the Rust side.
    name_key TEXT NOT NULL UNIQUE CHECK (name_key = lower(name)),
    -- An argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    is_superuser BOOLEAN NOT NULL DEFAULT FALSE,
    -- Unix milliseconds.
    created_at BIGINT NOT NULL,
    -- Unix milliseconds; NULL until the first successful login.
    last_login_at BIGINT
);
