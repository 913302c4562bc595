"""The SFTP byte stream of one client: requests sent together, replies read in bulk.

paramiko writes each request to the channel on its own and reads each reply with two channel
reads, so every one costs an encrypted SSH packet, a system call and several lock handovers
with its transport thread: most of a small file's cost. Here requests queue in an outbox that
goes out in one channel write (the transport cuts it into full SSH packets) as soon as anyone
waits for a reply, and replies are cut out of one large channel read.

Request numbers and the table of who waits for which reply stay paramiko's
(``request_number``, ``_expecting`` under its ``_lock``), so a reply reaches whoever asked,
as paramiko's own ``_read_response`` would hand it over. Only the holder of the location's
session uses a client (:meth:`SftpConnection.session`), so there is one writer and one
reader at a time; the state is kept per client and goes away with it.
"""

from __future__ import annotations

import struct
import weakref
from typing import Any, Protocol, cast

import paramiko
from paramiko.message import Message
from paramiko.sftp import int64

#: The outbox is written out once it holds this much even if nobody waits yet.
FLUSH_BYTES = 1 << 20
#: Bytes asked of the channel per read: many replies, or a big read's data, at once.
RECV_BYTES = 1 << 20

_HEADER = struct.Struct(">IB")
_SIZE = struct.Struct(">I")


class ReplyTaker(Protocol):
    """Whoever waits for a reply (a :class:`~app.locations.sftp.protocol.Pipeline`)."""

    def _async_response(self, kind: int, msg: Message, num: int) -> None: ...


class _Stream:
    """One client's queued requests and the received bytes not yet cut into replies."""

    def __init__(self) -> None:
        self.outbox = bytearray()
        self.inbox = bytearray()
        self.start = 0


_streams: weakref.WeakKeyDictionary[paramiko.SFTPClient, _Stream] = weakref.WeakKeyDictionary()


def _stream(sftp: paramiko.SFTPClient) -> _Stream:
    found = _streams.get(sftp)
    if found is None:
        found = _streams[sftp] = _Stream()
    return found


def send(
    sftp: paramiko.SFTPClient, taker: ReplyTaker, command: int, args: tuple[object, ...]
) -> int:
    """Queue one request (encoded as paramiko encodes it); return its number."""
    client = cast(Any, sftp)
    msg = Message()
    with client._lock:
        num = cast(int, client.request_number)
        client.request_number = num + 1
        client._expecting[num] = taker
    msg.add_int(num)
    for item in args:
        if isinstance(item, int64):
            msg.add_int64(item)
        elif isinstance(item, int):
            msg.add_int(item)
        elif isinstance(item, paramiko.SFTPAttributes):
            cast(Any, item)._pack(msg)
        else:
            msg.add_string(cast(Any, item))
    body = msg.asbytes()
    stream = _stream(sftp)
    stream.outbox += _HEADER.pack(len(body) + 1, command)
    stream.outbox += body
    if hasattr(client, "requests"):
        client.requests += 1
    if len(stream.outbox) >= FLUSH_BYTES:
        flush(sftp)
    return num


def flush(sftp: paramiko.SFTPClient) -> None:
    """Write every queued request to the channel."""
    stream = _stream(sftp)
    if not stream.outbox:
        return
    data = memoryview(bytes(stream.outbox))
    stream.outbox.clear()
    channel = cast(Any, sftp).sock
    sent = 0
    while sent < len(data):  # the channel takes one SSH packet's worth a call
        n = channel.send(data[sent:])
        if n <= 0:
            raise paramiko.SSHException("Server connection dropped")
        sent += n


def read_reply(sftp: paramiko.SFTPClient) -> None:
    """Send what is queued, then take the next reply off the channel and hand it over.

    A reply nobody waits for any more (a request given up on) is dropped, as paramiko does.
    """
    flush(sftp)
    stream = _stream(sftp)
    channel = cast(Any, sftp).sock
    while True:
        reply = _cut(stream)
        if reply is not None:
            break
        try:
            data = channel.recv(RECV_BYTES)
        except EOFError as exc:
            raise paramiko.SSHException(f"Server connection dropped: {exc}") from None
        if not data:
            raise paramiko.SSHException("Server connection dropped")
        if stream.start:
            del stream.inbox[: stream.start]
            stream.start = 0
        stream.inbox += data
    kind, msg = reply
    num = msg.get_int()
    client = cast(Any, sftp)
    with client._lock:
        taker = client._expecting.pop(num, None)
    if taker is not None:
        taker._async_response(kind, msg, num)


def _cut(stream: _Stream) -> tuple[int, Message] | None:
    """The next whole reply in the inbox (type and message), or None until more arrives."""
    inbox, start = stream.inbox, stream.start
    if len(inbox) - start < 5:
        return None
    (size,) = _SIZE.unpack_from(inbox, start)
    if size > 1 << 24 or size < 1:
        raise paramiko.SSHException("garbage SFTP packet received")
    end = start + 4 + size
    if len(inbox) < end:
        return None
    kind = inbox[start + 4]
    msg = Message(bytes(inbox[start + 5 : end]))
    stream.start = end
    return kind, msg
