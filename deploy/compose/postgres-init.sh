#!/usr/bin/env bash
# Runs once, when the PostgreSQL volume is new (the image's /docker-entrypoint-initdb.d/).
# Creates the source systems' databases (policy, claims) and `dsar_reader`, the read-only role the
# connectors log in as: CONNECT and SELECT on whatever the source systems create there, nothing else.
set -euo pipefail
psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set reader_password="$SOURCES_READER_PASSWORD" <<'SQL'
CREATE ROLE dsar_reader LOGIN PASSWORD :'reader_password';
CREATE DATABASE policy;
CREATE DATABASE claims;
SQL
for database in policy claims; do
  psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$database" <<SQL
REVOKE ALL ON DATABASE $database FROM PUBLIC;
GRANT CONNECT ON DATABASE $database TO dsar_reader;
GRANT USAGE ON SCHEMA public TO dsar_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO dsar_reader;
SQL
done
