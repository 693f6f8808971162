"""The central collector: MQTT entries into a store, daily reports and traces."""
