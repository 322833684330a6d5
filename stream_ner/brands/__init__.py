"""Brand catalog and linking: which tracked brand, if any, each mention stands for."""

from stream_ner.brands.catalog import Brand, Catalog, default_catalog_path, load_catalog
from stream_ner.brands.linking import BrandLinker, Links, Match
from stream_ner.brands.normalize import UNKNOWN_PREFIX, fold, surface_id

__all__ = [
    "UNKNOWN_PREFIX",
    "Brand",
    "BrandLinker",
    "Catalog",
    "Links",
    "Match",
    "default_catalog_path",
    "fold",
    "load_catalog",
    "surface_id",
]
