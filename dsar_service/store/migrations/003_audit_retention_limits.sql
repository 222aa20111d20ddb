-- The audit trail: append-only, each entry chained to the previous one by its hash, so that an
-- edited or deleted entry is detected by `dsar audit verify`. Entries never hold the subject's
-- data: who (the caller), when, what, which request.
CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY,
    at         timestamptz NOT NULL,
    caller     text NOT NULL,
    action     text NOT NULL,
    request_id uuid,
    detail     jsonb NOT NULL DEFAULT '{}',
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL
);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

-- Keyed digests (HMAC under the master key) of the subject's strong identifiers, for the
-- per-subject rate limit; they reveal nothing without the master key.
ALTER TABLE requests ADD COLUMN subject_digests bytea[] NOT NULL DEFAULT '{}';
CREATE INDEX requests_subject_digests ON requests USING gin (subject_digests);

-- Archives expire; the request record stays (one year) and says when its archive was purged.
ALTER TABLE requests ADD COLUMN archive_purged_at timestamptz;
