"""Loading Jinja templates: the user's prompts folder first, promptrec's defaults behind it (a foundation module:
the item index renders item text with it, the prompt builder whole prompts).

Templates are strict (an undefined name is an error naming template and line) and item
text is inserted as data: values are never themselves rendered as templates.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import traceback
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import jinja2


def default_prompts_dir() -> Path:
    """The default templates: ``prompts/`` in a source checkout, or the copy inside an installed wheel."""
    here = Path(__file__).resolve().parent  # the promptrec package
    for candidate in (here.parent / "prompts", here / "default_prompts"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("promptrec's default prompts folder is missing; reinstall promptrec.")


_ENDS_WITH_YEAR = re.compile(r"\(\d{4}\)\s*$")


class TemplateError(ValueError):
    """A template that does not exist or does not render, with its name and line."""


def title_with_year(item: Any) -> str:
    """The item's title with " (year)" appended, unless the title already ends with a year in parentheses."""
    title = str(item.title)
    year = item.release_year
    if year is None or _ENDS_WITH_YEAR.search(title):
        return title
    return f"{title} ({year})"


def short_title(item: Any) -> str:
    """The item's title without a trailing year in parentheses ("Men in Black (1997)" -> "Men in Black")."""
    return _ENDS_WITH_YEAR.sub("", str(item.title)).rstrip() or str(item.title)


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
        self.env.filters["title_with_year"] = title_with_year
        self.env.filters["short_title"] = short_title
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
        """The whole template rendered with ``context``, stripped."""
        template = self.get(name)
        with _located(name):
            return template.render(**context).strip()

    def render_block(self, name: str, block: str, context: dict[str, Any]) -> str | None:
        """One ``{% block %}`` of a template rendered with ``context`` (None if the template lacks it)."""
        template = self.get(name)
        if block not in template.blocks:
            return None
        with _located(name):
            try:
                return "".join(template.blocks[block](template.new_context(context))).strip()
            except Exception:
                template.environment.handle_exception()  # re-raises with template line numbers
                raise


@contextlib.contextmanager
def _located(name: str) -> Iterator[None]:
    """Re-raise rendering errors as TemplateError naming the template and the line being rendered."""
    try:
        yield
    except TemplateError:
        raise
    except Exception as exc:  # undefined names, bad filter arguments, errors raised by filters
        line = next((f.lineno for f in reversed(traceback.extract_tb(exc.__traceback__))
                     if f.filename and f.filename.endswith(".j2")), "?")
        where = next((Path(f.filename).name for f in reversed(traceback.extract_tb(exc.__traceback__))
                      if f.filename and f.filename.endswith(".j2")), name)
        message = getattr(exc, "message", None) or str(exc)
        raise TemplateError(f"template '{where}', line {line}: {message}") from None
