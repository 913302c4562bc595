"""Desktop-app tests under a real X server (Xvfb), a real tray host (trayer) and D-Bus."""
