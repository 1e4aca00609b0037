"""How event states are compressed at rest: Zstandard with a trained dictionary.

A stored event's state is a short JSON object (a few hundred bytes) whose field names, type tags
(``{"_type_":"uuid_hex","_data_":…}``), topics, step and template names repeat from one event to
the next but hardly within one: a compressor on its own finds little to refer back to. A
dictionary trained on typical states gives it that history, and its entropy tables: on the
bundled journeys a state takes about 135 bytes of the 540 it takes as JSON, in about 2 µs, and
reads back in 1 µs.

Dictionaries are schema, as event names are: a state names the dictionary it was compressed with
(the Zstandard frame's dictionary ID), so once one is released it must never change — a new one is
added beside it under a new name and ID (``bench/zdict.py`` trains one from a demo run) and
becomes ``CURRENT``; states written with any earlier one keep reading. Stores from before this
one hold states in zlib with a preset dictionary (``states-1.zdict``, named by its Adler-32 in
the zlib header), in plain zlib, or not compressed at all: they all keep reading.
"""

from __future__ import annotations

import threading
import zlib
from functools import cache
from importlib import resources

import zstandard

from engine.domain.shared.errors import HuokeError

#: The dictionaries huoke has released, by file name; never edit or remove one. ``.zdict``: zlib
#: (raw bytes, named by their Adler-32); ``.zstd``: Zstandard (trained, with their own ID).
RELEASED = ("states-1.zdict", "states-2.zstd")
#: The dictionary new states are compressed with.
CURRENT = "states-2.zstd"
#: Their Adler-32 checksums as released (a test holds the files to them).
CHECKSUMS = {"states-1.zdict": 0x97FC4E15, "states-2.zstd": 0x158376E3}

#: Zstandard level: 3 (its default) against 1 makes a state about 4% smaller for 0.4 µs more;
#: levels above 3 cost several times as much for under 1% (15k states of a demo run).
LEVEL = 3

_ZLIB = b"\x78"  # a zlib stream's first byte (deflate, 32 KB window); a JSON object starts with "{"
_FDICT = 0x20  # the header's flag: a preset dictionary, its Adler-32 in the next four bytes
_ZSTD = b"\x28\xb5\x2f\xfd"  # a Zstandard frame's magic number


@cache
def dictionary(name: str) -> bytes:
    """A released dictionary's bytes."""
    return resources.files(__package__).joinpath("zdicts", name).read_bytes()


@cache
def _zlib_dictionaries() -> dict[int, bytes]:
    """The released zlib dictionaries by Adler-32 (as a zlib header names them)."""
    return {zlib.adler32(dictionary(n)): dictionary(n) for n in RELEASED if n.endswith(".zdict")}


@cache
def zstd_dictionary(name: str) -> zstandard.ZstdCompressionDict:
    """A released Zstandard dictionary, digested for ``LEVEL`` (shared by every thread: a
    digested dictionary is read-only)."""
    loaded = zstandard.ZstdCompressionDict(dictionary(name), dict_type=zstandard.DICT_TYPE_FULLDICT)
    loaded.precompute_compress(level=LEVEL)
    return loaded


@cache
def _zstd_dictionaries() -> dict[int, zstandard.ZstdCompressionDict]:
    """The released Zstandard dictionaries by ID (as a frame header names them)."""
    return {zstd_dictionary(n).dict_id(): zstd_dictionary(n) for n in RELEASED if n.endswith(".zstd")}


class UnknownDictionaryError(HuokeError):
    """A state compressed with a dictionary this huoke does not have (a newer huoke wrote it)."""


def _unknown(dictid: int) -> UnknownDictionaryError:
    return UnknownDictionaryError(
        f"a stored state was compressed with dictionary {dictid:#010x}, which this huoke does "
        "not have: it was written by a newer huoke — upgrade to read it"
    )


class StoredStateCompressor:
    """Compresses each stored event's state with the current dictionary, and reads back states
    compressed with any released dictionary (Zstandard or zlib), with plain zlib (stores before
    dictionaries), or not compressed (stores before compression)."""

    def __init__(self) -> None:
        self._current = zstd_dictionary(CURRENT)
        self._by_id = _zstd_dictionaries()
        self._zlib = _zlib_dictionaries()
        #: Zstandard contexts are not thread-safe: each thread gets its own, on first use
        self._local = threading.local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        c: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if c is None:
            c = self._local.compressor = zstandard.ZstdCompressor(
                level=LEVEL, dict_data=self._current, write_checksum=False, write_content_size=True, write_dict_id=True
            )
        return c

    def _decompressor(self, dictid: int) -> zstandard.ZstdDecompressor:
        found: dict[int, zstandard.ZstdDecompressor] = self._local.__dict__.setdefault("decompressors", {})
        d = found.get(dictid)
        if d is None:
            zdict = self._by_id.get(dictid)
            if zdict is None:
                raise _unknown(dictid)
            d = found[dictid] = zstandard.ZstdDecompressor(dict_data=zdict)
        return d

    def compress(self, data: bytes) -> bytes:
        return self._compressor().compress(data)

    def decompress(self, data: bytes) -> bytes:
        if data[:4] == _ZSTD:
            return self._decompressor(zstandard.get_frame_parameters(data).dict_id).decompress(data)
        if data[:1] != _ZLIB:
            return data
        if not data[1] & _FDICT:
            return zlib.decompress(data)
        dictid = int.from_bytes(data[2:6], "big")
        zdict = self._zlib.get(dictid)
        if zdict is None:
            raise _unknown(dictid)
        d = zlib.decompressobj(zdict=zdict)
        return d.decompress(data) + d.flush()


#: One compressor for the whole process (its contexts are per thread).
STATES = StoredStateCompressor()


def compress(data: bytes) -> bytes:
    """``data`` compressed as a stored state is (sealed personal fields are, before sealing)."""
    return STATES.compress(data)


def decompress(data: bytes) -> bytes:
    """``data`` as it was, whether compressed (with any released dictionary) or not."""
    return STATES.decompress(data)
