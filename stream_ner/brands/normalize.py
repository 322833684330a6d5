"""Text folding shared by the catalog and the linker.

``fold`` maps a text to a string of the same length (so offsets found in it are offsets into the original):
lower case, Latin accents dropped (``é`` -> ``e``; other scripts keep their marks), typographic
apostrophes and dashes made plain, every space character made ``" "``. ``surface_id`` turns an unknown
ORG/PRODUCT mention into a stable brand id.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

UNKNOWN_PREFIX = "~"
"""Brand ids of unknown mentions start with it (``~acme robotics``); catalog ids never do."""

_APOSTROPHES = "\u2018\u2019\u02bc\u2032\uff07`\u00b4"
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_POSSESSIVE = re.compile(r"'s?$")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=65_536)
def _fold_char(char: str) -> str:
    if char in _APOSTROPHES:
        return "'"
    if char in _DASHES:
        return "-"
    if char.isspace():
        return " "
    base = unicodedata.normalize("NFD", char)[0]
    if not base.isascii():  # only Latin accents are dropped: ブ must not become フ
        base = char
    lower = base.lower()
    return lower if len(lower) == 1 else base


def fold(text: str) -> str:
    """Lower-cased, accent- and punctuation-folded copy of ``text`` with exactly the same length."""
    if text.isascii():
        return text.lower()
    return "".join(map(_fold_char, text))


def is_word_char(char: str) -> bool:
    """Characters that continue a word, a handle or a hashtag (letters, digits, underscore)."""
    return char.isalnum() or char == "_"


def surface_id(mention: str) -> str | None:
    """Brand id of a mention that is not in the catalog: ``~`` + its folded, trimmed surface form.

    ``"@Acme_Robotics"``, ``"ACME Robotics's"`` and ``" acme  robotics "`` give ``"~acme_robotics"``,
    ``"~acme robotics"`` and ``"~acme robotics"``; a mention with no word character gives ``None``.
    """
    text = _SPACES.sub(" ", fold(mention)).strip()
    text = _POSSESSIVE.sub("", text)
    text = _EDGE_PUNCT.sub("", text)
    return UNKNOWN_PREFIX + text if text else None


def alias_keys(alias: str) -> set[str]:
    """Folded spellings under which an alias is found: as written, and with its punctuation varied.

    ``"Coca-Cola"`` gives ``coca-cola``, ``coca cola`` and ``cocacola``; ``"Air Max"`` also ``air-max``;
    ``"McDonald's"`` also ``mcdonalds``. Handles, hashtags and cashtags are only folded.
    """
    key = _SPACES.sub(" ", fold(alias)).strip()
    if key[:1] in "@#$":
        return {key}
    variants = {
        key,
        key.replace("-", " "),
        key.replace("-", ""),
        key.replace(" ", ""),
        key.replace(" ", "-"),
        key.replace(".", ""),
        key.replace("'", ""),
        key.replace(" & ", "&"),
        key.replace(" & ", " and "),
    }
    return {_SPACES.sub(" ", v).strip() for v in variants if len(v.strip()) >= 2}
