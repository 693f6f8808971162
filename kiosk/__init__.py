"""checkpoint-kiosk: the gate daemon and the central collector."""

__version__ = "0.1.0"
