"""Reading single files on an FTP server: ``stat`` now, and streamed downloads.

The engine decides what to overwrite from ``stat``, so it always asks the server (one
listing per folder, ``MLST`` for a single file), never a cached scan.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import posixpath
import socket
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from app.locations.base import CHUNK_SIZE, FileMeta
from app.locations.ftp.client import FTP_ERRORS, is_not_found
from app.locations.ftp.remote import Remote, mlst_entry
from app.locations.ftp.transfer import DownloadStream


class FtpReader:
    """What :meth:`Location.stat`, ``stat_many`` and ``open_read`` answer for a server folder."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    # --- stat -----------------------------------------------------------------------------

    def stat(self, path: str) -> FileMeta | None:
        """Ask the server now for ``path``'s size and time (None if it is not a file)."""
        return self.stat_many([path])[path]

    def stat_many(self, paths: Iterable[str]) -> dict[str, FileMeta | None]:
        """Ask the server now, one listing per folder (``MLST`` when a folder has one path)."""
        remote = self.remote
        groups: dict[str, list[str]] = defaultdict(list)
        for path in paths:
            groups[posixpath.dirname(remote.check(path))].append(path)
        if groups:
            remote.refresh_journal()
        result: dict[str, FileMeta | None] = {}
        for folder, group in groups.items():

            def stat_group(ftp: ftplib.FTP, folder: str = folder, group: list[str] = group) -> (
                dict[str, FileMeta | None]
            ):  # fmt: skip
                return self._stat_group(ftp, folder, group)

            result.update(remote.call(f"listing {remote.abs(folder)}", stat_group))
        return result

    def _stat_group(
        self, ftp: ftplib.FTP, folder: str, group: list[str], journal: bool = True
    ) -> dict[str, FileMeta | None]:
        remote = self.remote
        if len(group) == 1 and remote.use_mlsd:
            return {group[0]: self._mlst(ftp, group[0], journal)}
        try:
            entries = remote.list_dir(ftp, folder)
        except ftplib.error_perm as exc:
            # 550 says "no such folder"; pyftpdlib says 501, others other codes: ask the parent.
            if is_not_found(exc) or not self._is_folder(ftp, folder):
                return dict.fromkeys(group)
            raise
        by_name = {entry.name: entry for entry, _ in entries}
        result: dict[str, FileMeta | None] = {}
        for path in group:
            entry = by_name.get(posixpath.basename(path))
            if entry is None or not entry.is_file:
                result[path] = None
                continue
            mtime = entry.mtime_ns
            if (not remote.use_mlsd and remote.use_mdtm) or mtime is None:
                mtime = remote.mdtm(ftp, path, mtime)
            if mtime is None:
                result[path] = None
            else:
                result[path] = remote.meta(path, entry.size, mtime, entry.tag, journal)
        return result

    def _is_folder(self, ftp: ftplib.FTP, folder: str) -> bool:
        """Whether ``folder`` exists on the server as a folder (the root always does)."""
        if not folder:
            return True
        parent, name = posixpath.split(folder)
        if not self._is_folder(ftp, parent):
            return False
        try:
            entries = self.remote.list_dir(ftp, parent)
        except ftplib.error_perm:
            return False
        return any(entry.name == name and entry.is_dir for entry, _ in entries)

    def _mlst(self, ftp: ftplib.FTP, rel: str, journal: bool = True) -> FileMeta | None:
        remote = self.remote
        try:
            reply = ftp.sendcmd(f"MLST {remote.abs(rel)}")
        except ftplib.error_perm as exc:
            if is_not_found(exc):
                return None
            raise
        entry = mlst_entry(reply)
        if entry is None or not entry.is_file:
            return None
        mtime = entry.mtime_ns
        if mtime is None:
            mtime = remote.mdtm(ftp, rel, None)
        return None if mtime is None else remote.meta(rel, entry.size, mtime, entry.tag, journal)

    def stat_one(self, ftp: ftplib.FTP, rel: str, journal: bool = True) -> FileMeta | None:
        """``stat`` of one path on a connection already held (the writer checks with it)."""
        return self._stat_group(ftp, posixpath.dirname(rel), [rel], journal)[rel]

    # --- reading --------------------------------------------------------------------------

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """Stream ``path`` from the server; the connection is held until the block exits.

        Do not call this location's other methods from inside the block: FTP cannot
        interleave commands with a transfer (the client raises rather than deadlock).
        """
        client = self.remote.client
        self.remote.check(path)
        with client.session() as first:
            ftp, conn = self._start_download(first, path)

            def translate(exc: BaseException) -> Exception:
                client.drop(exc)
                return client.unavailable(f"download of {path}", exc)

            def confirm() -> None:
                try:
                    ftp.voidresp()
                except FTP_ERRORS as exc:
                    raise translate(exc) from None

            stream = DownloadStream(conn, translate, confirm)
            reader = io.BufferedReader(stream, CHUNK_SIZE)
            try:
                yield reader
            finally:
                reader.close()
                if not stream.finish():
                    client.drop()  # reply pending or transfer cut: start afresh

    def _start_download(self, ftp: ftplib.FTP, path: str) -> tuple[ftplib.FTP, socket.socket]:
        command = f"RETR {self.remote.abs(path)}"
        return self.remote.client.start_download(path, ftp, lambda f: (f, f.transfercmd(command)))
