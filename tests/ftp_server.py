"""pytest plugin: a real pyftpdlib server on 127.0.0.1 (filled in by the FTP work)."""
