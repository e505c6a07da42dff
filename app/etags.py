"""ETags: a stream's version, encrypted with AES-SIV under the stream's name.

SIV is deterministic (same version, same ETag, so caches can compare strings) and
authenticated (a client can neither read the version nor forge the next one). The stream
name is associated data, so an ETag of one resource fails to decrypt on any other.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

KEY_BITS = 512  # AES-256 in SIV mode takes two 256-bit keys
KEY_FILE = "etag.key"


class ETagCodec:
    def __init__(self, key: bytes) -> None:
        self._siv = AESSIV(key)
        # Same version, same tag: recently served tags are kept (AES-SIV costs more than a
        # 304 does otherwise).
        self.encode = functools.lru_cache(maxsize=65_536)(self._seal)

    def _seal(self, stream: str, version: int) -> str:
        """The opaque tag (without quotes) for ``version`` of ``stream``."""
        plain = version.to_bytes(8, "big", signed=True)
        sealed = self._siv.encrypt(plain, [stream.encode()])
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def decode(self, stream: str, tag: str) -> int | None:
        """The version a tag stands for, or None if it is not one of ours for this stream."""
        try:
            sealed = base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4))
            plain = self._siv.decrypt(sealed, [stream.encode()])
        except (InvalidTag, ValueError, binascii.Error):
            return None
        return int.from_bytes(plain, "big", signed=True)


def load_or_create_key(data_dir: Path) -> bytes:
    """The key kept under ``data_dir``: created (readable by its owner only) on first run."""
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = AESSIV.generate_key(KEY_BITS)
    # Written whole to a private temporary file, then linked into place: a process that
    # loses the race (gunicorn workers boot together) reads the winner's complete key,
    # never a half-written one.
    temporary = data_dir / f".{KEY_FILE}.{os.getpid()}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key)
        file.flush()
        os.fsync(file.fileno())
    try:
        os.link(temporary, path)
    except FileExistsError:  # another process won the race: use its key
        return path.read_bytes()
    finally:
        temporary.unlink()
    return key


def parse_key(text: str) -> bytes:
    """A key given in configuration: 64 bytes, hex or base64."""
    text = text.strip()
    wrong = f"ETAG_KEY must be {KEY_BITS // 8} bytes, in hex or base64"
    try:
        key = bytes.fromhex(text)
    except ValueError:
        try:
            key = base64.b64decode(text, validate=True)
        except ValueError:
            raise ValueError(wrong) from None
    if len(key) != KEY_BITS // 8:
        raise ValueError(wrong)
    return key
