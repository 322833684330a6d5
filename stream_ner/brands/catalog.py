"""The brand catalog: tracked brands and every spelling under which they are found.

A catalog is a YAML file validated against ``catalog.schema.json`` (both shipped next to this module)::

    brands:
      - id: nike                      # canonical brand id: lower case, [a-z0-9-], never starts with "~"
        name: Nike                    # display name, also an alias
        aliases: [Nike Inc]           # other names; punctuation and case variants are derived
        handles: ["@nike"]            # matched only as written (case-insensitive)
        hashtags: ["#justdoit"]
        cashtags: ["$NKE"]
        products: [Air Jordan, Air Max]   # names that stand for the brand
        ambiguous: [Jordan]           # names that are also common words (see below)

An alias listed in ``ambiguous`` (and any name of two characters or fewer) is linked when the model tags it
as ORG/PRODUCT, but found in untagged text only when written capitalised as in the catalog or in capitals:
"Apple" and "APPLE" count, "apple pie" does not. Two brands may not share a spelling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from stream_ner.brands.normalize import alias_keys
from stream_ner.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Brand:
    """One tracked brand as written in the catalog."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    handles: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    cashtags: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = ()

    def spellings(self) -> list[tuple[str, bool]]:
        """Every name of the brand with whether it is ambiguous, display name first."""
        ambiguous = {a.casefold() for a in self.ambiguous}
        names = [self.name, *self.aliases, *self.products]
        tags = [*self.handles, *self.hashtags, *self.cashtags]
        seen: dict[str, bool] = {}
        for name in names:
            seen.setdefault(name, name.casefold() in ambiguous or len(name) <= 2)
        for tag in tags:
            seen.setdefault(tag, False)
        return list(seen.items())


@dataclass(frozen=True, slots=True)
class Spelling:
    """A folded key of the linker's automaton and what it stands for."""

    brand: str
    written: str
    ambiguous: bool


@dataclass(frozen=True)
class Catalog:
    """The brands of one catalog file, by id, and the table of folded spellings derived from them."""

    brands: dict[str, Brand]
    spellings: dict[str, Spelling]

    @classmethod
    def of(cls, brands: list[Brand]) -> Catalog:
        """Build the spelling table; ``ConfigError`` on a duplicate id or a spelling two brands share."""
        by_id: dict[str, Brand] = {}
        table: dict[str, Spelling] = {}
        for brand in brands:
            if brand.id in by_id:
                raise ConfigError(f"brand catalog: duplicate id {brand.id!r}")
            by_id[brand.id] = brand
            names = {n.casefold() for n in (brand.name, *brand.aliases, *brand.products)}
            stray = [a for a in brand.ambiguous if a.casefold() not in names]
            if stray:
                raise ConfigError(
                    f"brand catalog: {brand.id!r} lists ambiguous names it does not have: {stray}"
                )
            for written, ambiguous in brand.spellings():
                for key in sorted(alias_keys(written)):
                    other = table.get(key)
                    if other is not None and other.brand != brand.id:
                        raise ConfigError(
                            f"brand catalog: {written!r} of {brand.id!r} folds to {key!r}, "
                            f"already a spelling of {other.brand!r}"
                        )
                    if other is None or (other.ambiguous and not ambiguous):
                        table[key] = Spelling(brand.id, written, ambiguous)
        return cls(by_id, table)


def default_catalog_path() -> Path:
    """The shipped sample catalog of about a hundred well-known brands."""
    return Path(str(resources.files("stream_ner.brands") / "catalog.yaml"))


def catalog_schema() -> dict[str, Any]:
    """The JSON Schema every catalog file must satisfy."""
    text = (resources.files("stream_ner.brands") / "catalog.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def load_catalog(path: Path | None = None) -> Catalog:
    """Read and validate a catalog file (``None``: the shipped sample); raises ``ConfigError`` if unusable."""
    import jsonschema

    path = path or default_catalog_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read brand catalog {path}: {exc}") from exc
    try:
        jsonschema.validate(data, catalog_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(top)"
        raise ConfigError(f"brand catalog {path} is invalid at {where}: {exc.message}") from exc
    brands = [
        Brand(
            id=raw["id"],
            name=raw["name"],
            **{key: tuple(raw.get(key, ())) for key in _LISTS},
        )
        for raw in data["brands"]
    ]
    return Catalog.of(brands)


_LISTS = ("aliases", "handles", "hashtags", "cashtags", "products", "ambiguous")
