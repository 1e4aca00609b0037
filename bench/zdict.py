"""Build a new preset dictionary for stored event states (see ``engine.eventstore.compression``).

    python -m bench.zdict engine/eventstore/zdicts/states-2.zdict [--leads 400] [--size 32768]

Runs the bundled journeys for a few hundred demo leads over 30 days (``bench.run.bench_huoke``)
and takes, for every kind of event stored, two typical states — and of events with sealed
personal fields, two of those fields as they are sealed — with their ids, ciphertexts and
wall-clock stamps blanked (they never repeat). The kinds stored most often go last: zlib reaches
the end of a dictionary with the shortest distances. A released dictionary is never rebuilt in
place: write a new file, add it to ``RELEASED`` with its checksum, and make it ``CURRENT``.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import tempfile
import zlib
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.run import bench_huoke, bench_settings
from engine.adapters.clock import VirtualClock
from engine.bootstrap import bootstrap
from engine.eventstore import compression
from engine.eventstore.saving import SEALED, SealingMapper

#: Values that never repeat from one event to the next: blanked in the samples.
_UUID = re.compile(rb'("_type_":"uuid_hex","_data_":")[0-9a-f]{32}"')
_SEALED = re.compile(rb'("' + SEALED.encode() + rb'":")[^"]*"')
_STAMP = re.compile(rb'("timestamp":\{"_type_":"datetime_iso","_data_":")[^"]*"')


def _typical(states: list[bytes], k: int = 2) -> list[bytes]:
    """``k`` states of median length (deterministic: no sampling)."""
    ordered = sorted(states, key=lambda s: (len(s), s))
    middle = len(ordered) // 2
    return ordered[max(0, middle - k // 2) : middle - k // 2 + k]


def _blank(state: bytes) -> bytes:
    for pattern in (_UUID, _SEALED, _STAMP):
        state = pattern.sub(rb'\1"', state)
    return state


def samples(folder: Path) -> dict[str, list[bytes]]:
    """Every stored state of the run in ``folder``, by topic; sealed fields under ``topic#sealed``."""
    found: dict[str, list[bytes]] = defaultdict(list)
    for db in sorted((folder / "data").glob("*.db")):
        with sqlite3.connect(db) as connection:
            tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "stored_events" not in tables:
                continue
            for topic, state in connection.execute("SELECT topic, state FROM stored_events"):
                found[topic].append(_blank(compression.decompress(state)))
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


def build(found: dict[str, list[bytes]], size: int) -> bytes:
    parts = [s for _, states in sorted(found.items(), key=lambda kv: (len(kv[1]), kv[0])) for s in _typical(states)]
    return b"".join(parts)[-size:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--leads", type=int, default=400)
    parser.add_argument("--size", type=int, default=32768, help="bytes (zlib uses at most 32 KB)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists: a released dictionary is never rebuilt in place")
    with tempfile.TemporaryDirectory(prefix="huoke-zdict-") as tmp:
        bench_huoke(Path(tmp), args.leads)
        found = samples(Path(tmp))
    dictionary = build(found, args.size)
    args.out.write_bytes(dictionary)
    states = [s for v in found.values() for s in v]
    plain = sum(len(zlib.compress(s, 1)) for s in states)
    primed = zlib.compressobj(compression.LEVEL, zdict=dictionary)
    with_it = sum(len((c := primed.copy()).compress(s) + c.flush()) for s in states)
    print(
        json.dumps(
            {
                "file": str(args.out),
                "bytes": len(dictionary),
                "adler32": zlib.adler32(dictionary),
                "kinds": len(found),
                "states": len(states),
                "plain_zlib_kb": round(plain / 1024, 1),
                "with_dictionary_kb": round(with_it / 1024, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
