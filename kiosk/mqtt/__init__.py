"""The kiosk's MQTT side: the publisher that drains the outbox, its status, commands, a private broker."""
