"""A save by another program on the server, listed exactly like FileSync's own upload.

The hub journal tags a file with the version FileSync uploaded when size and second match.
That must not hide what the server itself says changed: pyftpdlib's ``MLSD`` gives each file a
``unique`` fact (device and inode), and a replacing save has a new one. Real pyftpdlib server,
real folder, real engine.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from app.locations.ftp.location import FtpLocation
from tests.ftp_server import ThreadedFtpServer
from tests.helpers import tree, wait_until, write_file
from tests.test_ftp_sync import T_OLD, SyncRig

NS = 1_000_000_000


def replace_on_server(path: Path, data: bytes, mtime: float) -> None:
    """Save as another FTP client would (a new file renamed over), at ``mtime``."""
    temp = path.with_name("other-client.tmp")
    temp.write_bytes(data)
    os.utime(temp, (mtime, mtime))
    os.replace(temp, path)


def test_own_upload_lists_as_written_and_a_foreign_same_second_save_does_not(
    ftp_server: ThreadedFtpServer,
) -> None:
    loc = ftp_server.location()
    assert isinstance(loc, FtpLocation)
    try:
        with loc.batch():
            written = loc.write("doc.txt", io.BytesIO(b"ours"), int(T_OLD) * NS)
        assert loc.scan()["doc.txt"] == written  # our own upload is no change
        replace_on_server(ftp_server.root / "doc.txt", b"them", T_OLD + 0.5)
        foreign = loc.scan()["doc.txt"]
        assert foreign.same_version(written)  # the listing alone cannot tell them apart
        assert foreign.tag != written.tag
    finally:
        loc.close()


def test_a_same_second_same_size_save_on_the_server_reaches_the_folder(
    tmp_path: Path, ftp_server: ThreadedFtpServer
) -> None:
    rig = SyncRig(tmp_path, ftp_server)
    try:
        write_file(rig.folder / "a.txt", "live 2 in 1: a.txt", mtime=T_OLD)
        rig.engine.start()
        rig.wait_converged()
        replace_on_server(ftp_server.root / "a.txt", b"live 4 in 2: a.txt", T_OLD + 0.4)
        wait_until(
            lambda: tree(rig.folder).get("a.txt") == b"live 4 in 2: a.txt",
            timeout=60,
            message=lambda: f"the server's save in the folder: {tree(rig.folder)}",
        )
    finally:
        rig.close()
