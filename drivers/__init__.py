"""Hardware drivers: one module per physical device, in the gpiozero shape."""
