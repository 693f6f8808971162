"""`kiosk-admin`: keys, passes, health tokens for tests, revocations, residents and broker users."""
