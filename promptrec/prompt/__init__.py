"""Jinja templates from prompts/ that turn items, histories and candidates into text."""

from promptrec._lazy import lazy_exports

_EXPORTS = {
    "PromptBuilder": "promptrec.prompt.builder", "Prompt": "promptrec.prompt.builder",
    "PromptBudgetError": "promptrec.prompt.builder", "TemplateLibrary": "promptrec.templates",
    "TemplateError": "promptrec.templates", "LabelScheme": "promptrec.prompt.labels",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
