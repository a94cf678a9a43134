"""Bearer tokens with scopes: who may read, write or approve through the HTTP service.

Tokens come from a file (`--tokens FILE`) or the environment (`ADAPTIVE_RUNTIME_TOKENS`),
one per line (or separated by `;` in the environment, where a token therefore can't hold
one): the scopes, comma-separated, then the token. Lines starting with `#` are comments.

    read,write  3b1f0c6e2d8a4f5b9c7e1a2d4f6b8c0e
    read        9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d

A token is compared in constant time and never appears in a log line or a response.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigurationError

__all__ = ["ENV_TOKENS", "SCOPES", "Tokens"]

ENV_TOKENS = "ADAPTIVE_RUNTIME_TOKENS"
SCOPES = frozenset({"read", "write", "approve"})
MIN_TOKEN_LENGTH = 16


class Tokens:
    """The tokens a server accepts, and the scopes each grants."""

    __slots__ = ("_tokens",)

    def __init__(self, tokens: Iterable[tuple[str, frozenset[str]]] = ()) -> None:
        self._tokens = tuple(tokens)

    def __repr__(self) -> str:  # never the tokens themselves
        return f"Tokens({len(self._tokens)} configured)"

    def __bool__(self) -> bool:
        return bool(self._tokens)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every token: what must be scrubbed from anything shown."""
        return tuple(token for token, _ in self._tokens)

    @classmethod
    def parse(cls, text: str, *, where: str, separator: str | None = None) -> Tokens:
        """Read `scopes token` lines (also split at `separator`, if given); a bad line is a
        ConfigurationError naming its number."""
        found: list[tuple[str, frozenset[str]]] = []
        lines: dict[str, int] = {}  # each token's line
        if separator is not None:
            text = text.replace(separator, "\n")
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                msg = f"{where}, line {number}: write 'SCOPES TOKEN', e.g. 'read,write <token>'"
                raise ConfigurationError(msg)
            scopes = frozenset(s.strip() for s in parts[0].split(",") if s.strip())
            unknown = sorted(scopes - SCOPES)
            if unknown or not scopes:
                if frozenset(parts[1].split(",")) <= SCOPES:  # 'TOKEN SCOPES': say no word of it
                    msg = f"{where}, line {number}: the scopes come first: write 'SCOPES TOKEN', e.g. 'read,write <token>' (the line is not shown: it holds a token)"
                    raise ConfigurationError(msg)
                # a typo (wrte) is shown; a word as long as a token may be one, so it is not
                found_words = [
                    word
                    if len(word) < MIN_TOKEN_LENGTH
                    else f"a word of {len(word)} characters (not shown: it may be a token)"
                    for word in unknown
                ]
                msg = f"{where}, line {number}: scopes are {', '.join(sorted(SCOPES))}; found {', '.join(found_words) or 'none'}"
                raise ConfigurationError(msg)
            if len(parts[1]) < MIN_TOKEN_LENGTH:
                msg = f"{where}, line {number}: a token needs at least {MIN_TOKEN_LENGTH} characters (try `python -c 'import secrets; print(secrets.token_hex(16))'`)"
                raise ConfigurationError(msg)
            if not all("!" <= c <= "~" for c in parts[1]):
                msg = f"{where}, line {number}: a token is sent in an HTTP header, so it must be ASCII letters, digits and punctuation only"
                raise ConfigurationError(msg)
            if parts[1] in lines:
                # which scopes would win is not for a reader of the file to guess
                msg = f"{where}, line {number}: the token of line {lines[parts[1]]} again; give each token one line with all its scopes"
                raise ConfigurationError(msg)
            lines[parts[1]] = number
            found.append((parts[1], scopes))
        return cls(found)

    @classmethod
    def load(cls, file: str | os.PathLike[str] | None = None) -> Tokens:
        """The tokens of `file`, else of the environment variable; none if neither is set."""
        if file is not None:
            path = Path(file)
            try:
                text = path.read_text(encoding="utf-8-sig")  # a BOM from an editor
            except OSError as exc:
                msg = f"can't read the token file {str(path)!r}: {exc.strerror or exc}"
                raise ConfigurationError(msg) from None
            tokens = cls.parse(text, where=str(path))
            if not tokens:  # a file given and found empty is not "no tokens were given"
                msg = (
                    f"the token file {str(path)!r} holds no token: write lines of 'SCOPES"
                    " TOKEN', e.g. 'read,write <token>' (blank lines and # comments are skipped)"
                )
                raise ConfigurationError(msg)
            return tokens
        return cls.parse(os.environ.get(ENV_TOKENS, ""), where=ENV_TOKENS, separator=";")

    @staticmethod
    def exposure(file: str | os.PathLike[str]) -> str | None:
        """A warning if users other than the file's owner and group may read a token file."""
        try:
            mode = os.stat(file).st_mode
        except OSError:
            return None
        if not mode & 0o004:
            return None
        return (
            f"the token file {os.fspath(file)!r} can be read by every user of this machine (mode"
            f" {mode & 0o777:04o}); `chmod 600` it, as anyone who reads a token may use it"
        )

    def scopes_of(self, authorization: str | None) -> frozenset[str] | None:
        """The scopes an `Authorization: Bearer <token>` header grants; None if it grants none."""
        if not authorization:
            return None
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return None
        given = token.strip().encode()
        granted: frozenset[str] | None = None
        for known, scopes in self._tokens:  # every token is compared: no early exit to time
            if hmac.compare_digest(known.encode(), given):
                granted = scopes
        return granted
