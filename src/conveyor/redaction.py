"""Hiding credentials in URLs before they are shown: in logs, banners and error messages.

A broker or result URL can carry a secret in two places, and ``redact_url`` hides both:

- the user information: ``redis://user:s3cret@host`` shows as ``redis://user:***@host``
  (a user name alone is shown);
- the query: any option whose name contains one of ``SECRET_WORDS`` keeps its name and
  loses its value, such as ``?password=...`` (which redis-py accepts),
  ``sentinel_password``, ``ssl_password``, ``token``, ``api_key`` or ``client_secret``.

It works on the text, without parsing ports or hosts, so a malformed URL (the very thing an
error message is about) is redacted too. A password must be percent-encoded in a URL, as
anywhere: an unencoded ``?`` or ``#`` inside one ends the URL's authority for redis-py and
for this function alike. ``redact_text`` hides the same credentials in another library's
error message about the URL.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

__all__ = ["HIDDEN", "SECRET_WORDS", "is_secret_option", "redact_text", "redact_url"]

HIDDEN = "***"

SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "key", "credential", "auth")
"""A query option whose name contains one of these (in any case) is a secret."""


def is_secret_option(name: str) -> bool:
    """Whether a URL query option of this name carries a credential."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def redact_url(url: str) -> str:
    """``url`` with every credential it carries replaced by ``***``, fit to be shown."""
    return _scan(url)[0]


def redact_text(text: str, url: str) -> str:
    """``text`` (another library's error message about ``url``) without ``url``'s credentials.

    A parser that misreads a malformed URL can quote a piece of its password (redis-py:
    "Port could not be cast to integer value as 'pa'" for ``redis://:pa/ss@host``), so each
    piece of three characters or more between separators is hidden too.
    """
    found: set[str] = set()
    for secret in _scan(url)[1]:
        for form in (secret, unquote_plus(secret)):
            found.add(form)
            found.update(piece for piece in re.split(r"[/?#@:&=;]", form) if len(piece) >= 3)
    for secret in sorted(found, key=len, reverse=True):
        if secret:
            text = text.replace(secret, HIDDEN)
    return text


def _scan(url: str) -> tuple[str, list[str]]:
    """The redacted URL, and the raw credential values it hid."""
    secrets: list[str] = []
    scheme, separator, rest = url.partition("://")
    head = scheme + separator if separator else ""
    if not separator:
        rest = url
    rest, hash_mark, fragment = rest.partition("#")
    rest, question_mark, query = rest.partition("?")
    userinfo, at, after = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if separator and at and colon:
        # the last "@" ends the user information: an unencoded "@" or "/" in a password is
        # hidden with it rather than taken for the host or the path
        secrets.append(password)
        rest = f"{user}:{HIDDEN}@{after}"
    if question_mark:
        options = []
        for option in query.split("&"):
            name, equals, value = option.partition("=")
            if equals and value and is_secret_option(unquote_plus(name)):
                secrets.append(value)
                option = f"{name}={HIDDEN}"
            options.append(option)
        rest += "?" + "&".join(options)
    if hash_mark:
        rest += "#" + fragment
    return head + rest, secrets
