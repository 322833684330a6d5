import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from stream_ner.brands import BrandLinker, default_catalog_path, load_catalog
from stream_ner.brands.catalog import catalog_schema
from stream_ner.errors import ConfigError


def test_the_sample_catalog_is_valid_and_large_enough():
    data = yaml.safe_load(default_catalog_path().read_text())
    jsonschema.validate(data, catalog_schema())
    catalog = load_catalog()
    assert len(catalog.brands) >= 100
    assert {"nike", "apple", "coca-cola", "tesla"} <= set(catalog.brands)
    assert all(not b.startswith("~") for b in catalog.brands)


def test_the_schema_is_itself_valid():
    jsonschema.Draft202012Validator.check_schema(catalog_schema())


def write(tmp_path: Path, brands: list[dict]) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "brands": brands}))
    return path


def test_a_custom_catalog_links(tmp_path):
    path = write(
        tmp_path, [{"id": "acme", "name": "Acme", "handles": ["@acme_hq"], "products": ["Roadrunner Trap"]}]
    )
    linker = BrandLinker.from_catalog(path)
    (links,) = linker.link(["@ACME_HQ ships the roadrunner-trap"], [[]])
    assert links.brands == ("acme",)


@pytest.mark.parametrize(
    ("brands", "message"),
    [
        ([{"id": "Bad Id", "name": "x"}], "invalid at brands/0/id"),
        ([{"id": "a", "name": "A", "handles": ["nohandle"]}], "invalid at brands/0/handles/0"),
        ([{"id": "a", "name": "Alpha"}, {"id": "a", "name": "Beta"}], "duplicate id"),
        ([{"id": "a", "name": "Coca-Cola"}, {"id": "b", "name": "Coca Cola"}], "already a spelling of 'a'"),
        ([{"id": "a", "name": "Alpha", "ambiguous": ["Beta"]}], "ambiguous names it does not have"),
        ([{"id": "a", "name": "Alpha", "colour": "red"}], "invalid at brands/0"),
    ],
)
def test_invalid_catalogs_are_refused_with_the_reason(tmp_path, brands, message):
    with pytest.raises(ConfigError, match=message):
        load_catalog(write(tmp_path, brands))


def test_unreadable_catalog_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalog(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"brands": "nope"}))
    with pytest.raises(ConfigError, match="invalid"):
        load_catalog(bad)
