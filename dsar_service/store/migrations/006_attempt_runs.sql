-- The first attempt of a system's current run (its first dispatch, a RetrySystem, or asking it
-- again with new identifiers), so that `max_attempts` bounds the attempts of each run rather
-- than the attempt number, which only grows.
ALTER TABLE request_systems ADD COLUMN run_first_attempt integer NOT NULL DEFAULT 1;
-- The idle-request sweep looks for collecting requests by their last change.
CREATE INDEX requests_collecting_updated ON requests (updated_at) WHERE state = 'collecting';
