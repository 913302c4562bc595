"""The sync engine: one queue, pure decisions (``plan``), the state index, and the I/O loop."""
