"""A mail backend for the worker under test: writes mail to files, like Django's
file-based backend, but cannot reach any address at unreachable.invalid."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from typing import Any

from django.core.mail.backends.filebased import EmailBackend as FileBackend


class FlakyBackend(FileBackend):
    def send_messages(self, email_messages: Sequence[Any]) -> int:
        for message in email_messages:
            bad = [r for r in message.recipients() if r.endswith("@unreachable.invalid")]
            if bad:
                raise smtplib.SMTPRecipientsRefused({r: (550, b"no such domain") for r in bad})
        return int(super().send_messages(email_messages))
