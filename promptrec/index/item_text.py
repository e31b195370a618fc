"""The text that represents an item, rendered from an editable template (prompts/item.j2)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from promptrec.data.catalog import Catalog
from promptrec.data.records import Item
from promptrec.templates import TemplateLibrary

DEFAULT_ITEM_TEMPLATE = "item.j2"


class ItemTextRenderer:
    """Renders items with ``template`` from ``prompts_dir`` (defaults: promptrec's prompts/item.j2)."""

    def __init__(self, template: str = DEFAULT_ITEM_TEMPLATE, prompts_dir: str | Path | None = None):
        path = Path(template)
        if path.suffix == ".j2" and path.exists() and prompts_dir is None:  # a template file given directly
            prompts_dir, template = path.parent, path.name
        self.library = TemplateLibrary(prompts_dir)
        self.template = template
        self.library.get(template)  # fail early on a missing or broken template

    @property
    def template_hash(self) -> str:
        return self.library.source_hash(self.template)

    def render(self, item: Item) -> str:
        return " ".join(self.library.render(self.template, item=item).split())

    def render_catalog(self, catalog: Catalog) -> dict[str, str]:
        return {item.item_id: self.render(item) for item in catalog}


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
