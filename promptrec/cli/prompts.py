"""`promptrec prompts ...`: list the templates and preview exactly what the LLM will see."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from promptrec.cli.common import DATA_HELP, FORMAT_HELP, console, load, user_errors

app = typer.Typer(help="List prompt templates and preview rendered prompts.", no_args_is_help=True)
PROMPTS_HELP = "Your prompts folder; templates missing there come from promptrec's defaults."


@app.command("list")
def list_(prompts_dir: Optional[str] = typer.Option(None, help=PROMPTS_HELP)) -> None:
    """Every template, where it comes from, and what it is for."""
    from promptrec.templates import TemplateLibrary, default_prompts_dir

    with user_errors():
        lib = TemplateLibrary(prompts_dir)
    table = Table(title="prompt templates")
    for col in ("template", "from", "purpose"):
        table.add_column(col)
    default = default_prompts_dir().resolve()
    for name in lib.names():
        path = lib.source_path(name)
        text = path.read_text()
        doc = text.split("#}")[0].lstrip("{#- ").split(".")[0].strip() if text.lstrip().startswith("{#") else ""
        table.add_row(name, "default" if path.resolve().parent == default else str(path.parent), doc)
    console.print(table)


@app.command()
def render(
    user: Optional[str] = typer.Option(None, help="User id (default: the first user of the data)."),
    now: Optional[str] = typer.Option(None, help="Time of the prediction, ISO with zone (default: the user's last event)."),
    template: str = typer.Option("label_scoring", help="Task (label_scoring, listwise, pointwise) or a template name."),
    path: Optional[str] = typer.Option(None, "--data", help=DATA_HELP),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    prompts_dir: Optional[str] = typer.Option(None, help=PROMPTS_HELP),
    model: str = typer.Option("SmolLM2-135M-Instruct", help="Model whose tokenizer and chat template are used."),
    candidates: int = typer.Option(20, help="Number of candidates."),
    items: Optional[str] = typer.Option(None, help="Comma-separated candidate item ids (default: popular unseen items)."),
    max_tokens: int = typer.Option(800, help="Prompt token budget (history is cut to fit)."),
    timezone: Optional[str] = typer.Option(None, help="Time zone for the prompt (default: the dataset's)."),
    evidence: bool = typer.Option(True, help="Give the candidates the retriever's evidence (visits, distance, ...)."),
) -> None:
    """Print exactly what the LLM will see for a user at a time, and its token count."""
    from promptrec.models import load_tokenizer
    from promptrec.prompt.builder import TASKS, PromptBuilder

    with user_errors():
        ds = load(path, format)
        inter = ds.interactions
        user = user or str(inter.users[0])
        if not inter.has_user(user):
            raise KeyError(f"user '{user}' has no events in {ds.name}")
        when = now or str(inter.history(user)["timestamp"].iloc[-1])
        history = inter.history(user, before=when)
        if items:
            chosen = [ds.catalog[i.strip()] for i in items.split(",")]
        else:
            seen = set(history["item_id"])
            popular = inter.before(when).frame["item_id"].astype(str).value_counts().index  # ties: first seen first
            chosen = [ds.catalog[i] for i in popular if i not in seen][:candidates]
        builder = PromptBuilder(prompts_dir=prompts_dir, tokenizer=load_tokenizer(model), max_prompt_tokens=max_tokens,
                                timezone=timezone or inter.timezone)
        task = template.removesuffix(".j2")
        pointwise = task == "pointwise"
        kwargs = {"candidate": chosen[0]} if pointwise else {}
        if evidence and not pointwise:
            from promptrec.retriever.retriever import TimeAwareRetriever

            facts = TimeAwareRetriever(signals=["trending"]).fit(inter, ds.catalog)
            kwargs = {"evidence": facts.explain(user, when, [c.item_id for c in chosen])}
        prompt = builder.build(task if task in TASKS else "custom", history, [] if pointwise else chosen, when, ds.catalog,
                               template=None if task in TASKS else template, **kwargs)
    console.rule(f"{prompt.template} for user {user} at {when}")
    console.print(prompt.text, markup=False, highlight=False, soft_wrap=True)
    console.rule()
    console.print(f"{prompt.token_count} tokens ({model} tokenizer, budget {max_tokens}); history: "
                  f"{prompt.history_shown} events shown, {prompt.history_summarized} summarised; "
                  f"{len(prompt.candidate_ids)} candidates" + ("" if items else " (popular unseen items before now)"))
