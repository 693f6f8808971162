"""Ingest: MQTT entries, statuses and alerts into the store, exactly once, in batches."""
