"""Emulators that plug in at the lowest layer, so the real driver code runs."""
