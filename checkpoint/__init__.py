"""The contract both deployables speak: payloads, topics, reason codes, signed formats, config types.

It imports nothing from `kiosk` or `office`, and nothing of the camera or GPIO stack.
"""

__version__ = "0.1.0"
