"""Distant supervision: brand catalog names found in unlabelled posts, taught as ORG and PRODUCT.

The sentiment corpora's posts carry no entity tags; the brand catalog knows a few hundred names that
are ORG or PRODUCT wherever they occur. ``catalog_spans`` finds them with the brand linker's own matcher
(word boundaries, the longest of overlapping matches), and ``with_catalog_tags`` turns them into tag
labels on an example, *partially*: the words of a catalog match get their ``B-``/``I-`` tags, every other
word stays out of the tag loss (it is not known to be ``O``; a teacher, when there is one, still covers it).

Rules, stricter than the linker's because no model vouches for a match here:

- a catalog name (display name or alias) is ORG, a product PRODUCT, a handle or cashtag ORG (a handle
  with its ``@``, as the training data's @-mention policy has it);
- where the NER training data tags the same name (compared as ``evaluation.surface_key``) in a corpus
  that has both labels, its majority label there wins (``corpus_conventions``): WNUT-17 calls Facebook
  and YouTube ORG although the catalog lists them as products of Meta and Google;
- ambiguous spellings (common words such as "Apple" or "Teams") and hashtags never count, in any case;
- names and products count only as the catalog writes them or with a capital letter: "iphone" in lower
  case is left out, as the corpora label casual lower-case names inconsistently.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

from stream_ner.brands.catalog import Catalog
from stream_ner.brands.linking import BrandLinker
from stream_ner.brands.normalize import fold
from stream_ner.evaluation import surface_key
from stream_ner.offline.data import IGNORE, Example, Record, TeacherOutputs, corpus_of, token_labels

Span = tuple[int, int, str]


def spelling_labels(catalog: Catalog) -> dict[str, str]:
    """The label, ORG or PRODUCT, of each folded spelling that may be taught (not ambiguous, no hashtag)."""
    labels: dict[str, str] = {}
    for brand in catalog.brands.values():
        tagged = [(n, "ORG") for n in (brand.name, *brand.aliases, *brand.handles, *brand.cashtags)]
        tagged += [(p, "PRODUCT") for p in brand.products]
        for written, label in tagged:
            key = fold(written).strip()
            spelling = catalog.spellings.get(key)
            if spelling is not None and spelling.brand == brand.id and not spelling.ambiguous:
                labels.setdefault(key, label)
    return labels


def corpus_conventions(records: Iterable[Record]) -> dict[str, str]:
    """The majority label of each entity name in the records of corpora that annotate both ORG and PRODUCT.

    Keys are ``surface_key`` forms; ties go to the label first seen. Corpora without PRODUCT (BTC) do not
    vote: they call every product ORG.
    """
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        if not {"ORG", "PRODUCT"} <= corpus_of(record).labels:
            continue
        for start, end, label in record.spans:
            votes[surface_key(record.text[start:end])][label] += 1
    return {key: counts.most_common(1)[0][0] for key, counts in votes.items()}


def catalog_spans(
    text: str, linker: BrandLinker, labels: dict[str, str], conventions: Mapping[str, str] | None = None
) -> tuple[Span, ...]:
    """The catalog matches of ``text`` that ``labels`` (``spelling_labels``) teaches, as gold-style spans.

    A name's label in ``conventions`` (``corpus_conventions``) overrides the catalog's; a name the
    conventions call neither ORG nor PRODUCT is not taught.
    """
    out = []
    for match in linker.find(text):
        found = text[match.start : match.end]
        label = labels.get(fold(match.spelling.written).strip())
        if label is not None and conventions:
            label = conventions.get(surface_key(found), label)
        if label not in ("ORG", "PRODUCT"):
            continue
        if found[0] not in "@$" and found != match.spelling.written and found.islower():
            continue
        out.append((match.start, match.end, label))
    return tuple(out)


def with_catalog_tags(
    examples: Sequence[Example],
    linker: BrandLinker,
    corpus: str,
    specials: tuple[int, int],
    conventions: Mapping[str, str] | None = None,
) -> list[Example]:
    """Copies of the ``examples`` that have a catalog match, tagged on its words only (see the module).

    ``specials`` is the tokenizer's ``(prefix, suffix)`` token counts; ``conventions`` as for
    ``catalog_spans``. The copies belong to ``corpus`` and keep the teacher's tag logits; they drop the
    sentiment labels and the teacher's sentiment outputs (the originals still teach those), so a post's
    sentiment is not counted twice in an epoch.
    """
    labels = spelling_labels(linker.catalog)
    out = []
    for ex in examples:
        spans = catalog_spans(ex.record.text, linker, labels, conventions)
        if not spans:
            continue
        tags = token_labels(ex.word_ids, ex.offsets, spans, specials, partial=True)
        if not (tags != IGNORE).any():  # every match cut off by truncation
            continue
        out.append(
            dataclasses.replace(
                ex,
                record=dataclasses.replace(ex.record, spans=spans),
                corpus=corpus,
                labels=tags,
                post_label=IGNORE,
                target_labels=None,
                target_spans=(),
                teacher=TeacherOutputs(ex.teacher.tags) if ex.teacher is not None else None,
            )
        )
    return out
