"""The session: the lane's state machine, its events, the temperature protocol and the entry it records."""
