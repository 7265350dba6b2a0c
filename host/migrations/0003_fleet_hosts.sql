-- 0003: the fleet's hosts and when each last asked for work (a claim or a registration), so
-- a claim takes at most its share of the work when other hosts are there to take the rest
-- (host/src/fleet/mod.rs, CLAIM). A host is live while it was seen within the lease TTL of the
-- claim asking, or holds a live lease; the row of a host gone for good is harmless (never live
-- again) and is reused if a host of that name comes back.
CREATE TABLE fleet_hosts (
    host      text        PRIMARY KEY,
    last_seen timestamptz NOT NULL DEFAULT now()
);
