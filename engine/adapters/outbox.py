"""The embedded default transport: .eml files and an SMS JSONL file in an outbox folder.

Writes are atomic (temp file + rename for e-mail; one flushed line per SMS), and the folder is
the record of what left, so a send id found there after a crash is reconciled, not resent.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from uuid import UUID

from engine.adapters.email_message import email_bytes
from engine.application.ports import OutgoingMessage, Progress, SendResult
from engine.application.sending import send_each

#: How many messages leave between one commit of markers and one of outcomes: the folder tells
#: exactly which of them left before a crash (``already_sent``), so none is sent twice.
FOUND_EXACTLY = 64


class OutboxEmailChannel:
    """Writes each e-mail to <outbox>/email/<send_id>.eml."""

    name = "email"

    def __init__(self, outbox: Path, sender_name: str, sender_email: str) -> None:
        self.folder = outbox / "email"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sender_name = sender_name
        self.sender_email = sender_email

    def _path(self, send_id: UUID) -> Path:
        return self.folder / f"{send_id}.eml"

    def already_sent(self, send_id: UUID) -> str | None:
        path = self._path(send_id)
        return str(path) if path.exists() else None

    def send_batch(self, messages: list[OutgoingMessage], progress: Progress) -> None:
        send_each(messages, progress, self._write, together=FOUND_EXACTLY)

    def _write(self, m: OutgoingMessage) -> SendResult:
        path = str(self._path(m.send_id))
        tmp = f"{path[:-4]}.tmp"
        # os calls, not Path.write_bytes: a quarter less time a message (pathlib's open layers)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # as open() makes it (umask)
        try:
            data = memoryview(email_bytes(m, self.sender_name, self.sender_email))
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return SendResult(m.send_id, ok=True, provider_ref=path)


class OutboxSmsChannel:
    """Appends each SMS as one JSON line to <outbox>/sms.jsonl."""

    name = "sms"

    def __init__(self, outbox: Path) -> None:
        outbox.mkdir(parents=True, exist_ok=True)
        self.path = outbox / "sms.jsonl"
        self._sent: set[str] = set()
        self._drop_torn_tail()
        self._read_sent()

    def _read_sent(self) -> None:
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        self._sent.add(json.loads(line)["send_id"])
                    except (ValueError, KeyError):
                        continue  # a torn last line from a crash: that SMS did not leave

    def _drop_torn_tail(self) -> None:
        """A process killed mid-write leaves a partial last line: that SMS never left."""
        if not self.path.exists():
            return
        with self.path.open("rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def already_sent(self, send_id: UUID) -> str | None:
        """Where the SMS left, if it did; the file is read again for one not known here (another
        process of this store, an embedded run's helper, may have appended it)."""
        if str(send_id) not in self._sent:
            self._read_sent()
        return f"{self.path}#{send_id}" if str(send_id) in self._sent else None

    def send_batch(self, messages: list[OutgoingMessage], progress: Progress) -> None:
        opened: list[TextIO] = []  # the file is opened for the first message that leaves

        def append(m: OutgoingMessage) -> SendResult:
            if not opened:
                opened.append(self.path.open("a", encoding="utf-8"))
            f = opened[0]
            line = {
                "send_id": str(m.send_id),
                "at": (m.at or datetime.now(UTC)).isoformat(),  # the send time by the engine's clock
                "to": m.to,
                "text": m.body.text.strip(),
                "locale": m.body.locale,
                "template_variant": m.body.variant,
            }
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()  # in the file before its outcome is recorded (a kill loses nothing)
            self._sent.add(str(m.send_id))
            return SendResult(m.send_id, ok=True, provider_ref=f"{self.path}#{m.send_id}")

        try:
            send_each(messages, progress, append, together=FOUND_EXACTLY)
        finally:
            for f in opened:
                os.fsync(f.fileno())
                f.close()
