"""The gate daemon: camera → scanner → credentials → session → policy → actuators and outbox → MQTT."""
