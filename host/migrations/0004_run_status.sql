-- 0003: where each tenant stands (connector-host status, serve's /status page).
-- One row per tenant, written by the host at the end of every run (host/src/status/): the
-- last run (start, end, outcome, the error's one line, full or incremental, the last
-- progress), the last success and full walk, and per phase when it last completed, as one
-- JSON text the host merges and writes back by compare-and-set on the text it read. A
-- host-owned table: the guest's kv-checkpoint door names keys of its namespace in
-- `checkpoints`, never this table.
CREATE TABLE host_run_status (
    tenant     text        PRIMARY KEY,
    record     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
