"""Which variant of a template a message gets (``JinjaRenderer.resolve``), as the folder changes."""

from __future__ import annotations

import os
from pathlib import Path

from engine.adapters.templates import SETTLED_NS, JinjaRenderer


def test_a_variant_added_or_removed_while_the_engine_runs_is_seen_by_the_next_message(tmp_path: Path) -> None:
    folder = tmp_path / "sms" / "hello"
    folder.mkdir(parents=True)
    (folder / "zh-CN.txt.j2").write_text("你好")
    renderer = JinjaRenderer(tmp_path)
    assert renderer.resolve("sms", "hello", "senior", "zh-CN") == "zh-CN"
    (folder / "senior.zh-CN.txt.j2").write_text("您好")
    assert renderer.resolve("sms", "hello", "senior", "zh-CN") == "senior.zh-CN"
    (folder / "senior.zh-CN.txt.j2").unlink()
    assert renderer.resolve("sms", "hello", "senior", "zh-CN") == "zh-CN"
    assert renderer.resolve("sms", "goodbye", "senior", "zh-CN") is None


def test_a_settled_folder_is_not_looked_through_again(tmp_path: Path) -> None:
    """The variant found in a folder that has not changed since (and not in the last
    ``SETTLED_NS``) is used as found: one stat of the folder a message."""
    folder = tmp_path / "sms" / "hello"
    folder.mkdir(parents=True)
    (folder / "zh-CN.txt.j2").write_text("你好")
    long_ago = os.stat(folder).st_mtime_ns - 10 * SETTLED_NS
    os.utime(folder, ns=(long_ago, long_ago))
    renderer = JinjaRenderer(tmp_path)
    assert renderer.resolve("sms", "hello", "senior", "zh-CN") == "zh-CN"
    (folder / "senior.zh-CN.txt.j2").write_text("您好")
    os.utime(folder, ns=(long_ago, long_ago))  # as if nothing changed: the files are not asked
    assert renderer.resolve("sms", "hello", "senior", "zh-CN") == "zh-CN"
    os.utime(folder)  # the folder changed
    assert renderer.resolve("sms", "hello", "senior", "zh-CN") == "senior.zh-CN"
