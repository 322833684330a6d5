"""The public names of ``stream_ner``: everything in ``__all__`` exists, and nothing public is left out."""

from __future__ import annotations

import stream_ner

PUBLIC = {"Analysis", "Entity", "EntityEvent", "NerModel", "Post", "Rejected", "Sentiment", "__version__"}


def test_all_lists_the_public_names() -> None:
    assert set(stream_ner.__all__) == PUBLIC
    assert len(stream_ner.__all__) == len(PUBLIC)


def test_every_exported_name_exists_and_belongs_to_the_package() -> None:
    for name in stream_ner.__all__:
        member = getattr(stream_ner, name)
        if name != "__version__":
            assert member.__module__.startswith("stream_ner."), name


def test_no_public_name_is_missing_from_all() -> None:
    names = {n for n in vars(stream_ner) if not n.startswith("_")}
    public = {n for n in names if not isinstance(getattr(stream_ner, n), type(stream_ner))}  # not submodules
    assert public <= set(stream_ner.__all__), public - set(stream_ner.__all__)
