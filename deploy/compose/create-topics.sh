#!/usr/bin/env bash
# The compose init job: creates dsar's topics (idempotently) and exits 0; the service and the connectors
# start after it. TOPICS, PARTITIONS, REPLICATION_FACTOR and BOOTSTRAP come from compose.yaml.
# Heartbeats are only worth an hour; commands, results and dead letters carry sealed data only, kept a week.
set -euo pipefail
kafka_topics=/opt/kafka/bin/kafka-topics.sh
for topic in $TOPICS; do
  case "$topic" in
    *.heartbeats) retention_ms=3600000 ;;
    *) retention_ms=604800000 ;;
  esac
  "$kafka_topics" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$topic" \
    --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR" \
    --config "retention.ms=$retention_ms" --config cleanup.policy=delete
done
"$kafka_topics" --bootstrap-server "$BOOTSTRAP" --describe --topic 'dsar\..*' | grep -c PartitionCount \
  | xargs -I{} echo "{} dsar topics ready"
