"""Loading Jinja templates: the user's prompts folder first, promptrec's defaults behind it.

Templates are strict (an undefined name is an error naming template and line) and item
text is inserted as data: values are never themselves rendered as templates.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import jinja2


def default_prompts_dir() -> Path:
    """The default templates: ``prompts/`` in a source checkout, or the copy inside an installed wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "prompts", here / "default_prompts"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("promptrec's default prompts folder is missing; reinstall promptrec.")


class TemplateError(ValueError):
    """A template that does not exist or does not render, with its name and line."""


class TemplateLibrary:
    """Templates by name, from ``folder`` (if given) with promptrec's defaults as fallback."""

    def __init__(self, folder: str | Path | None = None, filters: dict[str, Callable[..., Any]] | None = None):
        self.folder = Path(folder) if folder else None
        if self.folder is not None and not self.folder.is_dir():
            raise FileNotFoundError(f"prompts folder {self.folder} does not exist; create it or omit it for the defaults.")
        search = [str(self.folder)] if self.folder else []
        search.append(str(default_prompts_dir()))
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["replace_from"] = lambda value, mapping: mapping.get(value, value)
        self.env.filters.update(filters or {})

    def names(self) -> list[str]:
        return sorted(n for n in self.env.list_templates() if n.endswith(".j2"))

    def source_path(self, name: str) -> Path:
        for base in self.env.loader.searchpath:  # type: ignore[union-attr]
            if (Path(base) / name).exists():
                return Path(base) / name
        raise TemplateError(f"template '{name}' not found in {self.env.loader.searchpath}.")  # type: ignore[union-attr]

    def source_hash(self, name: str) -> str:
        return hashlib.sha256(self.source_path(name).read_bytes()).hexdigest()[:16]

    @lru_cache(maxsize=64)
    def get(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateNotFound:
            raise TemplateError(f"template '{name}' not found; available: {self.names()}.") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template '{exc.name or name}', line {exc.lineno}: {exc.message}") from None

    def render(self, name: str, **context: Any) -> str:
        template = self.get(name)
        try:
            return template.render(**context).strip()
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template '{name}', line {_error_line(name)}: {exc.message}") from None


def _error_line(name: str) -> int | str:
    """The template line being rendered when the error was raised (from the traceback)."""
    import sys
    import traceback

    tb = sys.exc_info()[2]
    for frame in reversed(traceback.extract_tb(tb)):
        if frame.filename and frame.filename.endswith(name):
            return frame.lineno
    return "?"
