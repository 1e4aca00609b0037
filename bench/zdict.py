"""Train a new dictionary for stored event states (see ``engine.eventstore.compression``).

    python -m bench.zdict engine/eventstore/zdicts/states-3.zstd --id 0x48554B03 [--leads 500]

Runs the bundled journeys for a few hundred demo leads over 30 days (``bench.run.bench_huoke``)
and trains a Zstandard dictionary on every state stored — and, of events with sealed personal
fields, on those fields as they are compressed before sealing — with their ids, ciphertexts and
wall-clock stamps blanked (they never repeat). It then compresses a second, smaller run's states
(ids and stamps the dictionary never saw) with the current dictionary and the new one, and prints
both sizes. A released dictionary is never rebuilt in place: write a new file under a new ID, add
it to ``RELEASED`` with its checksum, and make it ``CURRENT``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import tempfile
import zlib
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard

from bench.run import bench_huoke, bench_settings
from engine.adapters.clock import VirtualClock
from engine.bootstrap import bootstrap
from engine.eventstore import compression
from engine.eventstore.saving import SEALED, SealingMapper

#: Values that never repeat from one event to the next: blanked in the samples.
_UUID = re.compile(rb'("_type_":"uuid_hex","_data_":")[0-9a-f]{32}"')
_SEALED = re.compile(rb'("' + SEALED.encode() + rb'":")[^"]*"')
_STAMP = re.compile(rb'("timestamp":\{"_type_":"datetime_iso","_data_":")[^"]*"')
#: The dictionary IDs Zstandard leaves to applications (it reserves the rest).
_IDS = "32768 to 2**31 - 1"


def _blank(state: bytes) -> bytes:
    for pattern in (_UUID, _SEALED, _STAMP):
        state = pattern.sub(rb'\1"', state)
    return state


def samples(folder: Path, blank: bool = True) -> dict[str, list[bytes]]:
    """Every stored state of the run in ``folder``, by topic, blanked; sealed fields under
    ``topic#sealed`` (only when blanked: as stored, they are ciphertext)."""
    found: dict[str, list[bytes]] = defaultdict(list)
    for db in sorted((folder / "data").glob("*.db")):
        with sqlite3.connect(db) as connection:
            tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "stored_events" not in tables:
                continue
            for topic, state in connection.execute("SELECT topic, state FROM stored_events"):
                plain = compression.decompress(state)
                found[topic].append(_blank(plain) if blank else plain)
    if not blank:
        return found
    engine = bootstrap(bench_settings(folder), VirtualClock(datetime(2026, 3, 2, tzinfo=UTC)))
    try:
        for app in (engine.leads, engine.journeys, engine.deliveries):
            mapper: Any = app.mapper
            if not isinstance(mapper, SealingMapper):
                continue
            for note in app.recorder.select_notifications(start=1, limit=10**9, topics=list(mapper.fields)):
                event = vars(mapper.to_domain_event(note))
                secret = {k: event[k] for k in mapper.fields[note.topic] if k in event}
                found[f"{note.topic}#sealed"].append(_blank(mapper.transcoder.encode(secret)))
    finally:
        engine.close()
    return found


def build(found: dict[str, list[bytes]], size: int, dict_id: int) -> zstandard.ZstdCompressionDict:
    """A Zstandard dictionary of ``size`` bytes trained on every sample, each kind of event
    weighed as often as it is stored. The samples are shuffled (with a fixed seed): the trainer
    tunes itself on a held-out part of them, which in topic order would be kinds it never saw
    (that made states 20% larger)."""
    samples: list[bytes | bytearray | memoryview] = [s for _, states in sorted(found.items()) for s in states]
    random.Random(27).shuffle(samples)
    return zstandard.train_dictionary(size, samples, dict_id=dict_id, level=compression.LEVEL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--id", type=lambda v: int(v, 0), required=True, help=f"the dictionary's ID ({_IDS})")
    parser.add_argument("--leads", type=int, default=500)
    parser.add_argument("--size", type=int, default=32768, help="bytes")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists: a released dictionary is never rebuilt in place")
    if not 32768 <= args.id < 2**31:
        parser.error(f"--id {args.id:#x}: Zstandard reserves IDs outside {_IDS}")
    with tempfile.TemporaryDirectory(prefix="huoke-zdict-") as tmp:
        bench_huoke(Path(tmp), args.leads)
        found = samples(Path(tmp))
    with tempfile.TemporaryDirectory(prefix="huoke-zdict-check-") as tmp:
        bench_huoke(Path(tmp), args.leads // 2)  # another run's states: ids and stamps the dictionary never saw
        check = [compression.decompress(s) for v in samples(Path(tmp), blank=False).values() for s in v]
    trained = build(found, args.size, args.id)
    args.out.write_bytes(trained.as_bytes())
    current = sum(len(compression.compress(s)) for s in check)
    with_it = zstandard.ZstdCompressor(level=compression.LEVEL, dict_data=trained)
    print(
        json.dumps(
            {
                "file": str(args.out),
                "bytes": len(trained.as_bytes()),
                "id": hex(trained.dict_id()),
                "adler32": hex(zlib.adler32(trained.as_bytes())),
                "kinds": len(found),
                "samples": sum(len(v) for v in found.values()),
                "checked_states": len(check),
                "json_bytes_per_state": round(sum(map(len, check)) / len(check), 1),
                "current_bytes_per_state": round(current / len(check), 1),
                "new_bytes_per_state": round(sum(len(with_it.compress(s)) for s in check) / len(check), 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
