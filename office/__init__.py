"""The community office: MQTT ingest into a store, daily reports, traces, the registry and the admin tools."""
