"""Typed device errors; every one names the device it came from."""


class DeviceError(Exception):
    """A physical device failed or gave an unusable answer."""

    def __init__(self, device: str, message: str) -> None:
        self.device = device
        self.detail = message
        super().__init__(f"{device}: {message}")
