"""The 64 subcategories (a copy of shared/taxonomy.yaml; its codes are a stable interface)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

TAXONOMY_FILE = Path(__file__).with_name("taxonomy.yaml")


@dataclass(frozen=True)
class Subcategory:
    code: str
    name: str
    category: str
    category_name: str
    definition: str
    default_urgency: str
    department: str
    co_departments: tuple[str, ...]


@dataclass(frozen=True)
class Taxonomy:
    version: str
    categories: dict[str, str]
    subcategories: dict[str, Subcategory]
    department_types: tuple[str, ...] = ()  # the controlled vocabulary of handling departments

    def department_of(self, code: str | None) -> str | None:
        sub = self.subcategories.get(code) if code else None
        return sub.department if sub is not None and sub.department else None

    def name_of(self, code: str | None) -> str | None:
        if code is None:
            return None
        if code in self.subcategories:
            return self.subcategories[code].name
        return self.categories.get(code)


def load_taxonomy(path: Path = TAXONOMY_FILE) -> Taxonomy:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    categories: dict[str, str] = {}
    subs: dict[str, Subcategory] = {}
    for category in data["categories"]:
        categories[category["code"]] = category["name"]
        for sub in category["subcategories"]:
            subs[sub["code"]] = Subcategory(
                code=sub["code"],
                name=sub["name"],
                category=category["code"],
                category_name=category["name"],
                definition=sub.get("definition", ""),
                default_urgency=sub.get("default_urgency", "normal"),
                department=sub.get("department", ""),
                co_departments=tuple(sub.get("co_departments") or ()),
            )
    return Taxonomy(
        version=str(data.get("version", "")),
        categories=categories,
        subcategories=subs,
        department_types=tuple(data.get("department_types") or ()),
    )


@cache
def default_taxonomy() -> Taxonomy:
    return load_taxonomy()
