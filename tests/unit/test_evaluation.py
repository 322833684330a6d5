"""Entity-level exact-match scoring on hand-made cases whose figures are worked out by hand."""

from __future__ import annotations

import pytest

from stream_ner.evaluation import exact_post_accuracy, known_surfaces, score, score_by_novelty, surface_key


def test_exact_match_counts_per_label_and_micro() -> None:
    gold = [
        [(0, 5, "PER"), (10, 15, "ORG")],
        [(0, 6, "LOC")],
    ]
    predicted = [
        [(0, 5, "PER"), (10, 14, "ORG")],  # ORG boundary off by one: a false positive and a miss
        [(0, 6, "LOC"), (8, 12, "PER")],  # an extra PER
    ]
    s = score(gold, predicted)
    by = {x.label: x for x in s.labels}
    assert (by["PER"].tp, by["PER"].fp, by["PER"].fn) == (1, 1, 0)
    assert (by["ORG"].tp, by["ORG"].fp, by["ORG"].fn) == (0, 1, 1)
    assert (by["LOC"].tp, by["LOC"].fp, by["LOC"].fn) == (1, 0, 0)
    assert (s.micro.tp, s.micro.fp, s.micro.fn) == (2, 2, 1)
    assert s.micro.precision == pytest.approx(0.5)
    assert s.micro.recall == pytest.approx(2 / 3)
    assert s.micro.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert by["PER"].f1 == pytest.approx(2 / 3)
    assert by["ORG"].f1 == 0.0


def test_right_span_wrong_label_is_a_miss_and_a_false_positive() -> None:
    s = score([[(0, 4, "ORG")]], [[(0, 4, "PRODUCT")]], labels={"ORG", "PRODUCT"})
    by = {x.label: x for x in s.labels}
    assert (by["ORG"].fn, by["PRODUCT"].fp, s.micro.tp) == (1, 1, 0)


def test_labels_the_dataset_does_not_annotate_are_left_out() -> None:
    gold = [[(0, 5, "PER")], []]
    predicted = [[(0, 5, "PER"), (7, 12, "PRODUCT")], [(0, 3, "PRODUCT")]]
    s = score(gold, predicted, labels={"PER", "ORG", "LOC"})
    assert [x.label for x in s.labels] == ["LOC", "ORG", "PER"]
    assert (s.micro.tp, s.micro.fp, s.micro.fn) == (1, 0, 0)
    assert s.micro.f1 == 1.0
    # without the restriction, the labels are those of the gold data: PRODUCT is still not scored
    assert score(gold, predicted).micro.f1 == 1.0


def test_scored_label_without_gold_or_prediction_has_zero_rates_not_an_error() -> None:
    s = score([[]], [[]], labels={"LOC"})
    (loc,) = s.labels
    assert (loc.precision, loc.recall, loc.f1, loc.support) == (0.0, 0.0, 0.0, 0)


def test_duplicate_predictions_count_once_and_lengths_must_match() -> None:
    s = score([[(0, 3, "LOC")]], [[(0, 3, "LOC"), (0, 3, "LOC")]])
    assert (s.micro.tp, s.micro.fp) == (1, 0)
    with pytest.raises(ValueError):
        score([[]], [[], []])


def test_as_dict_reports_percentages_and_counts() -> None:
    d = score([[(0, 3, "LOC"), (4, 6, "PER")]], [[(0, 3, "LOC")]]).as_dict()
    assert d["micro"] == {
        "precision": 100.0,
        "recall": 50.0,
        "f1": 66.67,
        "support": 2,
        "tp": 1,
        "fp": 0,
        "fn": 1,
    }
    assert d["PER"]["recall"] == 0.0 and d["LOC"]["f1"] == 100.0


# --- seen / unseen entities and posts exactly right ----------------------------------------------------


@pytest.mark.parametrize(
    ("surface", "key"),
    [("@Nike", "nike"), ("#nike", "nike"), (" NIKE ", "nike"), ("$AAPL", "aapl"), ("Straße", "strasse")],
)
def test_surface_key_casefolds_strips_one_sigil_and_collapses_spaces(surface: str, key: str) -> None:
    assert surface_key(surface) == key
    assert surface_key("New \t York\n") == "new york" and surface_key("@@x") == "@x"


def test_seen_and_unseen_are_split_by_gold_and_by_predicted_surface() -> None:
    known = known_surfaces(
        ["I love nike", "puma shoes in paris"], [[(7, 11, "ORG")], [(0, 4, "ORG"), (14, 19, "LOC")]]
    )
    assert known == {"nike", "puma", "paris"}
    texts = ["Nike beat Adidas in Paris", "#Puma and Reebok"]
    gold = [[(0, 4, "ORG"), (10, 16, "ORG"), (20, 25, "LOC")], [(0, 5, "ORG")]]
    predicted = [[(0, 4, "ORG"), (10, 16, "PER"), (20, 25, "LOC")], [(10, 16, "ORG")]]
    split = score_by_novelty(texts, gold, predicted, known, labels={"ORG", "LOC", "PER"})
    seen, unseen = ({x.label: (x.tp, x.fp, x.fn) for x in s.labels} for s in (split.seen, split.unseen))
    # seen: Nike and Paris found, #Puma ("puma") missed
    assert seen == {"ORG": (1, 0, 1), "LOC": (1, 0, 0), "PER": (0, 0, 0)}
    # unseen: Adidas missed (typed PER), Reebok predicted where gold has nothing
    assert unseen == {"ORG": (0, 1, 1), "LOC": (0, 0, 0), "PER": (0, 1, 0)}
    # without labels, both parts score the labels of all the gold data: the PER guess is left out
    assert [x.label for x in score_by_novelty(texts, gold, predicted, known).unseen.labels] == ["LOC", "ORG"]
    with pytest.raises(ValueError):
        score_by_novelty(texts, gold, predicted[:1], known)


def test_post_accuracy_counts_posts_with_exactly_the_gold_entities() -> None:
    gold = [[(0, 4, "ORG")], [], [(0, 3, "PER")], []]
    predicted = [[(0, 4, "ORG")], [], [(0, 3, "ORG")], [(5, 8, "PRODUCT")]]
    assert exact_post_accuracy(gold, predicted) == 0.75  # PRODUCT is not scored: the last post is right
    assert exact_post_accuracy(gold, predicted, {"ORG", "PER", "PRODUCT"}) == 0.5
    assert exact_post_accuracy([], []) == 0.0
