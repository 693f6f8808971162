"""Communication with the broker: the MQTT publisher (`kiosk.comms.mqtt`)."""
