-- 0001: checkpoints, tenant leases and schedule, run history.
-- Applied once by host/src/fleet/migrate.rs, inside its transaction and advisory lock.
-- An applied migration is never edited (the migrator refuses a changed checksum): add 0002.

-- The PostgreSQL twin of the SQLite checkpoint table: compare-and-set on `version`.
CREATE TABLE checkpoints (
    namespace  text        NOT NULL,
    key        text        NOT NULL,
    value      bytea       NOT NULL,
    version    bigint      NOT NULL CHECK (version > 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, key)
);

-- Fencing tokens: one per claim, increasing across the fleet.
CREATE SEQUENCE fleet_lease_token AS bigint MINVALUE 1;

-- One row per tenant: its schedule (survives restarts, moves with the tenant) and its lease.
-- A lease is held while lease_host is set; lease_token stays after release (the last
-- token issued), so a write fenced by it is refused once the lease is gone.
CREATE TABLE fleet_tenants (
    tenant               text        PRIMARY KEY,
    next_due             timestamptz NOT NULL DEFAULT now(),
    consecutive_failures integer     NOT NULL DEFAULT 0,
    last_outcome         text,
    last_ended           timestamptz,
    lease_host           text,
    lease_token          bigint,
    lease_expires        timestamptz,
    CHECK ((lease_host IS NULL) = (lease_expires IS NULL)),
    CHECK (lease_host IS NULL OR lease_token IS NOT NULL)
);
CREATE INDEX fleet_tenants_due ON fleet_tenants (next_due);

-- One row per claim (token): which host ran which tenant, when, and how it ended
-- (succeeded, failed, or expired: the lease ran out and another host took the tenant).
CREATE TABLE fleet_runs (
    token   bigint      PRIMARY KEY,
    tenant  text        NOT NULL REFERENCES fleet_tenants (tenant),
    host    text        NOT NULL,
    started timestamptz NOT NULL,
    ended   timestamptz,
    outcome text,
    message text,
    CHECK (ended IS NULL OR ended >= started)
);
CREATE INDEX fleet_runs_tenant ON fleet_runs (tenant, started);
