"""How event states are compressed at rest: zlib with a preset dictionary.

A stored event's state is a short JSON object (a few hundred bytes) whose field names, type tags
(``{"_type_":"uuid_hex","_data_":…}``), topics, step and template names repeat from one event to
the next but hardly within one: plain zlib finds little to refer back to. A preset dictionary of
typical states (``zlib``'s ``zdict``) gives it that history: on the bundled journeys the states
take about half the room they took with plain zlib.

Dictionaries are schema, as event names are: a state names the dictionary it was compressed with
(the zlib header's DICTID, the dictionary's Adler-32), so once one is released it must never
change — a new one is added beside it under a new name (``bench/zdict.py`` builds one from a
demo run) and becomes ``CURRENT``; states written with any earlier one, with plain zlib or not
compressed at all keep reading.
"""

from __future__ import annotations

import zlib
from functools import cache
from importlib import resources

from engine.domain.shared.errors import HuokeError

#: The dictionaries huoke has released, by file name; never edit or remove one.
RELEASED = ("states-1.zdict",)
#: The dictionary new states are compressed with.
CURRENT = "states-1.zdict"
#: Their Adler-32 checksums as released (a test holds the files to them).
CHECKSUMS = {"states-1.zdict": 0x97FC4E15}

#: zlib level: with the dictionary, 6 against 1 makes a state 116 bytes instead of 130 on
#: average for 15 µs instead of 13 (20k states of a bench run; the dictionary is primed once and
#: copied, see ``StoredStateCompressor``).
LEVEL = 6

_ZLIB = b"\x78"  # a zlib stream's first byte (deflate, 32 KB window); a JSON object starts with "{"
_FDICT = 0x20  # the header's flag: a preset dictionary, its Adler-32 in the next four bytes


@cache
def dictionary(name: str) -> bytes:
    """A released dictionary's bytes."""
    return resources.files(__package__).joinpath("zdicts", name).read_bytes()


@cache
def _by_checksum() -> dict[int, bytes]:
    return {zlib.adler32(dictionary(name)): dictionary(name) for name in RELEASED}


class UnknownDictionaryError(HuokeError):
    """A state compressed with a dictionary this huoke does not have (a newer huoke wrote it)."""


class StoredStateCompressor:
    """Compresses each stored event's state with the current dictionary, and reads back states
    compressed with any released dictionary, with plain zlib (stores before dictionaries), or
    not compressed (stores before compression)."""

    def __init__(self) -> None:
        self._dictionaries = _by_checksum()
        #: a compressor primed with the dictionary; each state gets a copy, which is cheaper
        #: than priming one per state (the dictionary's hashing is done once)
        self._primed = zlib.compressobj(LEVEL, zdict=dictionary(CURRENT))

    def compress(self, data: bytes) -> bytes:
        c = self._primed.copy()
        return c.compress(data) + c.flush()

    def decompress(self, data: bytes) -> bytes:
        if data[:1] != _ZLIB:
            return data
        if not data[1] & _FDICT:
            return zlib.decompress(data)
        dictid = int.from_bytes(data[2:6], "big")
        zdict = self._dictionaries.get(dictid)
        if zdict is None:
            raise UnknownDictionaryError(
                f"a stored state was compressed with dictionary {dictid:#010x}, which this huoke does "
                "not have: it was written by a newer huoke — upgrade to read it"
            )
        d = zlib.decompressobj(zdict=zdict)
        return d.decompress(data) + d.flush()


#: One compressor for the whole process (it holds no per-call state).
STATES = StoredStateCompressor()


def compress(data: bytes) -> bytes:
    """``data`` compressed as a stored state is (sealed personal fields are, before sealing)."""
    return STATES.compress(data)


def decompress(data: bytes) -> bytes:
    """``data`` as it was, whether compressed (with any released dictionary) or not."""
    return STATES.decompress(data)
