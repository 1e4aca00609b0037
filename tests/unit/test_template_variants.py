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


def test_a_pass_renders_every_message_from_the_templates_as_they_were_when_it_began(tmp_path: Path) -> None:
    """``holding``: within it a template is read once (an edit made meanwhile waits for the next
    pass, so one pass never mixes two versions); after it, the edit is seen; other threads are
    not held by it."""
    import threading

    folder = tmp_path / "sms" / "hello"
    folder.mkdir(parents=True)
    (tmp_path / "sms" / "_layout").mkdir()
    (tmp_path / "sms" / "_layout" / "en.txt.j2").write_text("{{ body }} Reply STOP to opt out.")
    text = folder / "en.txt.j2"
    text.write_text("Hello {{ first_name }}")
    renderer = JinjaRenderer(tmp_path, default_locale="en")

    def render() -> str:
        return renderer.render("sms", "hello", "senior", "en", {"first_name": "Ann"}).text.strip()

    def edit(words: str, tick: int) -> None:
        text.write_text(words)
        stamp = os.stat(text).st_mtime_ns + tick * SETTLED_NS  # a new time, whatever the clock's tick
        os.utime(text, ns=(stamp, stamp))

    with renderer.holding():
        assert render() == "Hello Ann Reply STOP to opt out."
        edit("Hi {{ first_name }}", 1)
        assert render() == "Hello Ann Reply STOP to opt out."  # the same pass: as it began
        elsewhere: list[str] = []
        other = threading.Thread(target=lambda: elsewhere.append(render()))
        other.start()
        other.join()
        assert elsewhere == ["Hi Ann Reply STOP to opt out."]  # another thread is not held
        with renderer.holding():  # nested: still the outer pass
            assert render() == "Hello Ann Reply STOP to opt out."
        assert render() == "Hello Ann Reply STOP to opt out."
    assert render() == "Hi Ann Reply STOP to opt out."  # the next pass sees the edit
    with renderer.holding():
        edit("Dear {{ first_name }}", 2)
        assert render() == "Dear Ann Reply STOP to opt out."  # read when first used in the pass
