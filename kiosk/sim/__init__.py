"""The simulator: a scenario played through the real gate on emulated hardware, with the office beside it."""
