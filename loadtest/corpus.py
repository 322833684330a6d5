"""Texts for the load generator: a corpus's posts, reshuffled and varied, read at run time.

The corpus is a JSONL file or a directory of them (``train.jsonl`` files first), one object per line
with a ``text`` field. It is named by ``--corpus`` or ``STREAM_NER_LOADTEST_CORPUS``; without either the
shipped sample posts are used. Texts are only ever read, never written anywhere: results describe the
corpus by its size, not its content.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

CORPUS_ENV = "STREAM_NER_LOADTEST_CORPUS"

# Invented decorations, not taken from any corpus.
HASHTAGS = ("#tbt", "#mondaymood", "#fail", "#win", "#love", "#travel", "#tech", "#foodie", "#gameday", "#ad")
HANDLES = ("@support", "@dailynews", "@sam_k", "@the_real_jo", "@citydesk", "@help", "@maya_l", "@deals")
EMOJI = ("😂", "🔥", "🙏", "😍", "😡", "👀", "💯", "🎉", "☕", "📸", "🤔", "✨")
_DETOKENIZE = (
    (re.compile(r" ([.,!?;:%)])"), r"\1"),
    (re.compile(r"([(]) "), r"\1"),
    (re.compile(r" (n't|'s|'m|'re|'ll|'ve|'d)\b", re.IGNORECASE), r"\1"),
    (re.compile(r"# (\w)"), r"#\1"),
)


@dataclass(frozen=True)
class Corpus:
    """Texts to send and a description of where they came from (sizes only, no paths, no content)."""

    texts: list[str]
    description: str


def load_corpus(corpus: str | Path | None = None) -> Corpus:
    """The texts of ``corpus``, else of ``$STREAM_NER_LOADTEST_CORPUS``, else the shipped sample posts."""
    chosen = corpus or os.environ.get(CORPUS_ENV) or None
    if chosen is None:
        sample = resources.files("stream_ner") / "samples" / "posts.jsonl"
        texts = _texts(sample.read_text(encoding="utf-8"))
        return Corpus(texts, f"shipped sample posts ({len(texts)} texts)")
    files = corpus_files(Path(chosen))
    texts = [text for path in files for text in _texts(path.read_text(encoding="utf-8"))]
    if not texts:
        raise ValueError(f"no texts in corpus {chosen}")
    names = sorted({path.parent.name if path.name == "train.jsonl" else path.stem for path in files})
    return Corpus(texts, f"corpus {'+'.join(names)} ({len(texts)} texts)")


def corpus_files(path: Path) -> list[Path]:
    """The JSONL files of a corpus path: itself, or the ``train.jsonl`` (else all ``*.jsonl``) below it."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"corpus {path} is neither a file nor a directory")
    files = sorted(path.rglob("train.jsonl")) or sorted(path.rglob("*.jsonl"))
    if not files:
        raise ValueError(f"no .jsonl files under {path}")
    return files


def _texts(jsonl: str) -> list[str]:
    texts = []
    for line in jsonl.splitlines():
        if line.strip():
            text = json.loads(line).get("text")
            if isinstance(text, str) and text.strip():
                texts.append(text)
    return texts


def detokenize(text: str) -> str:
    """Undo the space-separated tokenisation of NER corpora ("it 's great ." -> "it's great.")."""
    for pattern, replacement in _DETOKENIZE:
        text = pattern.sub(replacement, text)
    return text


def vary(text: str, rng: random.Random) -> str:
    """One realistic variant of ``text``: detokenised, re-cased, hashtags, handles and emoji added or swapped.

    Deterministic for a given ``rng`` state; never returns an empty string for a non-empty ``text``.
    """
    out = detokenize(text) if rng.random() < 0.7 else text
    roll = rng.random()
    if roll < 0.08:
        out = out.lower()
    elif roll < 0.12:
        out = out.upper()
    elif roll < 0.2:
        out = out[:1].upper() + out[1:]
    if rng.random() < 0.3:
        out = re.sub(r"#\w+", lambda _: rng.choice(HASHTAGS), out)
    if rng.random() < 0.25:
        out = f"{rng.choice(HANDLES)} {out}"
    if rng.random() < 0.35:
        out = f"{out} {' '.join(rng.sample(HASHTAGS, rng.randint(1, 3)))}"
    if rng.random() < 0.4:
        out = f"{out} {''.join(rng.choices(EMOJI, k=rng.randint(1, 3)))}"
    return out


UNIQUE_WINDOW = 200_000
"""How many of its latest texts ``stream`` never repeats: far more than a worker's duplicate cache holds."""
_LINK_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def stream(texts: list[str], seed: int, unique_window: int = UNIQUE_WINDOW) -> Iterator[str]:
    """An endless stream of varied texts: each pass over ``texts`` in a fresh shuffled order.

    No text repeats any of the last ``unique_window`` it yielded, so repeats come only from
    ``with_repeats``: a small corpus has few variants of each text, and a repeat skips inference in a
    worker (its duplicate cache) but not in a peer or the bare runtime. A variant already yielded is
    varied again, up to three times, then gets a short link appended, as many posts carry one.
    """
    if not texts:
        raise ValueError("no texts to stream")
    rng = random.Random(seed)
    order = list(texts)
    recent: deque[str] = deque()
    seen: set[str] = set()
    while True:
        rng.shuffle(order)
        for text in order:
            out = vary(text, rng)
            for _ in range(3):
                if out not in seen:
                    break
                out = vary(text, rng)
            while out in seen:
                out = f"{out} https://t.co/{''.join(rng.choices(_LINK_CHARS, k=10))}"
            if len(recent) >= unique_window:
                seen.discard(recent.popleft())
            recent.append(out)
            seen.add(out)
            yield out


def with_repeats(texts: Iterator[str], share: float, seed: int, window: int = 1000) -> Iterator[str]:
    """``texts`` where a ``share`` of the items repeat an earlier one verbatim, like retweets do.

    Each item is, with probability ``share``, a text already yielded (uniformly among the last ``window``
    new ones), else the next text of ``texts``; the first item is always new. The new texts come in the
    order ``texts`` gives them, so runs with and without repeats see the same new texts. ``share`` 0
    returns ``texts`` itself.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the share of repeats must be in [0, 1), not {share}")
    if share == 0.0:
        return texts
    return _repeating(texts, share, random.Random(seed), window)


def _repeating(texts: Iterator[str], share: float, rng: random.Random, window: int) -> Iterator[str]:
    recent: list[str] = []  # a ring of the last ``window`` new texts
    new = 0
    while True:
        if recent and rng.random() < share:
            yield rng.choice(recent)
            continue
        text = next(texts)
        if len(recent) < window:
            recent.append(text)
        else:
            recent[new % window] = text
        new += 1
        yield text
