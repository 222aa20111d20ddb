-- How many of the request's identifiers (an append-only list) a system was last asked with, so
-- that a system is asked again when a strong identifier it accepts was found after it.
ALTER TABLE request_systems ADD COLUMN queried_count integer NOT NULL DEFAULT 0;
