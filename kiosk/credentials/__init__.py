"""Credentials: what each scanned payload is and whether it holds (passes, health codes, ID numbers)."""
