"""Command-line handlers of `kiosk-office`: run the service, and the report, trace and registry queries."""
