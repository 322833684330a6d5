import pytest

from stream_ner.brands import UNKNOWN_PREFIX, BrandLinker, Links, fold, surface_id
from stream_ner.model.entity import Entity


@pytest.fixture(scope="module")
def linker() -> BrandLinker:
    return BrandLinker.from_catalog()


def ent(text: str, span: str, label: str = "ORG", nth: int = 0) -> Entity:
    start = -1
    for _ in range(nth + 1):
        start = text.index(span, start + 1)
    return Entity(start, start + len(span), label, 0.9, span)


def brands(linker: BrandLinker, text: str, entities: list[Entity] | None = None) -> tuple[str, ...]:
    return linker.link([text], [entities or []])[0].brands


@pytest.mark.parametrize(
    "text",
    [
        "just bought new shoes from @nike today",
        "#nike forever",
        "NIKE does it again",
        "Nike's new ad is everywhere",
        "nike, adidas or puma?",
        "the Air Max 90 is back",
        "$NKE down 3% premarket",
        "my Air-Jordan collection",
    ],
)
def test_untagged_spellings_of_a_brand_are_found(linker, text):
    assert "nike" in brands(linker, text)


@pytest.mark.parametrize(
    "text",
    ["pineapple juice", "snapple", "apples and pears", "@nikestore_fake is not nike_"[:22], "#nikefan"],
)
def test_matches_respect_word_boundaries(linker, text):
    found = brands(linker, text)
    assert "apple" not in found and "nike" not in found


def test_cashtags_handles_and_products_link_to_their_brand(linker):
    text = "$AAPL up after the iPhone launch, @AppleSupport is busy, Coca Cola vs cocacola vs COCA-COLA"
    assert brands(linker, text) == ("apple", "coca-cola")


def test_ambiguous_names_count_only_when_capitalised_in_untagged_text(linker):
    assert brands(linker, "an apple a day, mind the gap, on target") == ()
    assert brands(linker, "Apple and Target and the Gap store") == ("apple", "gap", "target")
    assert brands(linker, "APPLE IS DOWN") == ("apple",)


def test_accents_and_typographic_apostrophes_fold(linker):
    assert brands(linker, "Nestle vs Nestlé, L\u2019Oréal and McDonald\u2019s") == (
        "loreal",
        "mcdonalds",
        "nestle",
    )


def test_entities_link_exactly_by_overlap_or_to_their_surface_form(linker):
    text = "Acme Robotics' arm beats Tesla's Cybertruck, says Elon Musk from @Apple"
    entities = [
        ent(text, "Acme Robotics'"),
        ent(text, "Tesla's"),
        ent(text, "Cybertruck", "PRODUCT"),
        ent(text, "Elon Musk", "PER"),
        ent(text, "@Apple"),
    ]
    (links,) = linker.link([text], [entities])
    assert links == Links(
        entity_brands=("~acme robotics", "tesla", "tesla", None, "apple"),
        brands=("apple", "tesla", "~acme robotics"),
    )


def test_a_tagged_ambiguous_name_links(linker):
    text = "the new apple watch from apple"
    links = linker.link([text], [[ent(text, "apple", "ORG", nth=1)]])[0]
    assert links.entity_brands == ("apple",)
    assert links.brands == ("apple",)  # the untagged "apple watch" also counts: an unambiguous product name


def test_a_span_inside_an_entity_of_another_label_is_trusted_to_the_model(linker):
    text = "Ford Bronco was an actor? No: Harrison Ford"
    entities = [ent(text, "Harrison Ford", "PER")]
    assert brands(linker, text, entities) == ("ford",)  # "Ford Bronco" counts, "Harrison Ford" does not


def test_unknown_mentions_can_be_left_out():
    linker = BrandLinker.from_catalog(link_unknown=False)
    text = "Acme Robotics and Nike"
    links = linker.link([text], [[ent(text, "Acme Robotics"), ent(text, "Nike")]])[0]
    assert links == Links(entity_brands=(None, "nike"), brands=("nike",))


def test_batch_keeps_order_and_alignment(linker):
    texts = ["nothing here", "Samsung Galaxy S24 vs iPhone", "Pepsi!"]
    entities = [[], [ent(texts[1], "Samsung Galaxy S24", "PRODUCT")], []]
    out = linker.link(texts, entities)
    assert [o.brands for o in out] == [(), ("apple", "samsung"), ("pepsico",)]
    assert out[1].entity_brands == ("samsung",)
    with pytest.raises(ValueError):
        linker.link(texts, entities[:2])


def test_find_keeps_the_longest_non_overlapping_matches(linker):
    text = "Apple Watch and Burger King"
    found = [(text[m.start : m.end], m.spelling.brand) for m in linker.find(text)]
    assert found == [("Apple Watch", "apple"), ("Burger King", "burger-king")]


def test_fold_keeps_length_and_surface_ids_are_marked():
    for text in ["İstanbul Straße ß", "L’Oréal — NIKE", "plain ascii"]:
        assert len(fold(text)) == len(text)
    assert fold("L’Oréal — NIKE") == "l'oreal - nike"
    assert surface_id("@Acme_Robotics") == UNKNOWN_PREFIX + "acme_robotics"
    assert surface_id("  ACME   Robotics's ") == "~acme robotics"
    assert surface_id("!!") is None


def test_folding_drops_latin_accents_only():
    from stream_ner.brands.normalize import fold, surface_id

    assert fold("Café Nestlé") == "cafe nestle"
    assert fold("セブンイレブン") == "セブンイレブン"  # dakuten are part of the letter, not accents
    assert surface_id("セブン-イレブン") == "~セブン-イレブン"
