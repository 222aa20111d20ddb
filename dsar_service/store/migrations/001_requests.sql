-- The service's own database: the source of truth for requests. It never holds personal data in
-- clear: the subject's identifiers and the request's private key are encrypted under the master
-- key, and result chunks stay sealed (HPKE) until the archive is assembled.

CREATE TABLE requests (
    request_id          uuid PRIMARY KEY,
    request_key         text NOT NULL UNIQUE,
    content_digest      bytea NOT NULL,            -- keyed digest of the submission, for idempotency
    kind                text NOT NULL CHECK (kind IN ('access', 'portability')),
    state               text NOT NULL,
    received_at         timestamptz NOT NULL,
    original_due_at     timestamptz NOT NULL,
    due_at              timestamptz NOT NULL,
    extension_reason    text NOT NULL DEFAULT '',
    recipient           text NOT NULL,             -- a public key: the archive's recipient
    sealed_identifiers  bytea,                     -- encrypted under the master key; NULL once destroyed
    public_key          bytea NOT NULL,            -- the request's X25519 public key
    wrapped_private_key bytea,                     -- encrypted under the master key; NULL once destroyed
    archive_version     integer NOT NULL DEFAULT 0,
    archive_size        bigint,
    archive_sha256      text,
    archive_created_at  timestamptz,
    archive_expires_at  timestamptz,
    assembly_lease_until timestamptz,
    error               text NOT NULL DEFAULT '',
    updated_at          timestamptz NOT NULL
);
CREATE INDEX requests_state_due ON requests (state, due_at);
CREATE INDEX requests_received ON requests (received_at DESC, request_id DESC);

CREATE TABLE request_systems (
    request_id        uuid NOT NULL REFERENCES requests ON DELETE CASCADE,
    system            text NOT NULL,
    state             text NOT NULL,
    round             integer NOT NULL DEFAULT 0,
    attempt           integer NOT NULL DEFAULT 0,
    records           bigint NOT NULL DEFAULT 0,
    bytes             bigint NOT NULL DEFAULT 0,
    started_at        timestamptz,
    ended_at          timestamptz,
    deadline_at       timestamptz,                 -- when the current attempt times out
    expected_chunks   bigint,                      -- from the attempt's completion
    sealed_discovered bytea,                       -- sealed to the request key, as received
    error             text NOT NULL DEFAULT '',
    PRIMARY KEY (request_id, system)
);
CREATE INDEX request_systems_deadline ON request_systems (deadline_at) WHERE deadline_at IS NOT NULL;

CREATE TABLE result_chunks (
    request_id     uuid NOT NULL REFERENCES requests ON DELETE CASCADE,
    system         text NOT NULL,
    attempt        integer NOT NULL,
    sequence       bigint NOT NULL,
    record_count   integer NOT NULL,
    sealed_records bytea NOT NULL,                 -- as received: sealed to the request key
    PRIMARY KEY (request_id, system, attempt, sequence)
);

CREATE TABLE archive_chunks (
    request_id uuid NOT NULL REFERENCES requests ON DELETE CASCADE,
    version    integer NOT NULL,
    sequence   integer NOT NULL,
    data       bytea NOT NULL,                     -- age-encrypted archive bytes
    PRIMARY KEY (request_id, version, sequence)
);

CREATE TABLE systems (
    name              text PRIMARY KEY,
    public_key        bytea NOT NULL,
    key_id            text NOT NULL,
    connector_version text NOT NULL,
    accepts           text[] NOT NULL,
    discovers         text[] NOT NULL,
    interval_seconds  integer NOT NULL,
    last_heartbeat    timestamptz NOT NULL,
    instances         jsonb NOT NULL DEFAULT '{}'  -- instance id -> last heartbeat (ISO 8601)
);
