"""Command-line handlers of `kiosk`: the entry point, the self-test, scan, verify and calibrate."""
