"""What the server kinds share: the held connection and its one retry (``session``), pauses
between failed connects (``backoff``) and the hub journal that tells same-size, same-second
saves apart on coarse servers (``hubjournal``).

Not a kind: nothing here is registered. Modules import each other directly.
"""
