-- 0002: the index a prefix delete of checkpoint keys (kv-checkpoint delete-prefix, 0.3.0)
-- walks. The range `key >= prefix AND key < upper bound` selects the keys that start with the
-- prefix only in byte order, which is the "C" collation's, not necessarily the database's
-- (en_US.UTF-8 orders by language rules): the statement compares `COLLATE "C"`, and the
-- primary key's index (the database's collation) cannot serve that range. Without this
-- index each prefix delete would read every key of the namespace.
CREATE INDEX checkpoints_key_bytes ON checkpoints (namespace, key COLLATE "C");
