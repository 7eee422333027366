-- Tenants, their numbers and API keys, call records, turns and daily usage (SQLite).
-- Times are stored as RFC 3339 text in UTC, days as YYYY-MM-DD, JSON as text.

CREATE TABLE tenants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    plan TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    -- 0 means no limit.
    max_concurrent_calls INTEGER NOT NULL DEFAULT 0 CHECK (max_concurrent_calls >= 0),
    monthly_call_limit INTEGER NOT NULL DEFAULT 0 CHECK (monthly_call_limit >= 0),
    monthly_minute_limit INTEGER NOT NULL DEFAULT 0 CHECK (monthly_minute_limit >= 0),
    settings TEXT NOT NULL DEFAULT '{}',
    -- Provider API keys by provider name; never returned by the API.
    provider_keys TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- A number belongs to one tenant: the primary key makes a second owner impossible.
CREATE TABLE phone_numbers (
    number TEXT PRIMARY KEY CHECK (number GLOB '+[1-9]*'),
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    created_at TEXT NOT NULL
);
CREATE INDEX phone_numbers_tenant ON phone_numbers (tenant_id);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL DEFAULT '',
    prefix TEXT NOT NULL UNIQUE,
    -- Hex SHA-256 of the whole key.
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    call_id TEXT NOT NULL,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    forwarded_from TEXT NOT NULL DEFAULT '',
    trunk TEXT NOT NULL,
    node_id TEXT NOT NULL,
    codec TEXT NOT NULL,
    invite_at TEXT NOT NULL,
    answer_at TEXT,
    end_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    end_reason TEXT NOT NULL,
    sip_status INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL DEFAULT 0,
    -- Records are written idempotently by Call-ID, so a replayed spool file adds nothing.
    UNIQUE (tenant_id, call_id)
);
CREATE INDEX calls_tenant_recent ON calls (tenant_id, id DESC);

CREATE TABLE turns (
    call_pk INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    seq INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('caller', 'agent')),
    text TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    latency_ms TEXT NOT NULL DEFAULT '{}',
    interrupted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (call_pk, seq)
);

CREATE TABLE usage_daily (
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    day TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    minutes INTEGER NOT NULL DEFAULT 0,
    seconds INTEGER NOT NULL DEFAULT 0,
    concurrent_peak INTEGER NOT NULL DEFAULT 0,
    cost_micros INTEGER NOT NULL DEFAULT 0,
    api_requests INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);
