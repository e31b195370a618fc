"""`promptrec finetune`: train a LoRA adapter for the reranker on a dataset's training split."""

from __future__ import annotations

from typing import Optional

import typer

from promptrec.cli.common import DATA_HELP, FORMAT_HELP, console, kv_table, user_errors


def finetune(
    path: Optional[str] = typer.Argument(None, help=DATA_HELP),
    out: str = typer.Option(..., help="Folder for the adapter and its manifest, e.g. adapters/ml100k-lora."),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    model: Optional[str] = typer.Option(None, help="Base model (default: SmolLM2-135M-Instruct)."),
    task: str = typer.Option("label_scoring", help="label_scoring (answer: one label) or listwise (ordered labels)."),
    examples: int = typer.Option(1500, help="Training examples, sampled from the training split (seeded)."),
    valid: int = typer.Option(200, help="Validation examples (the split's validation events) for early stopping."),
    hard_negatives: int = typer.Option(10, help="Retriever top-k negatives per example."),
    random_negatives: int = typer.Option(9, help="Random unseen negatives per example."),
    rank: int = typer.Option(8, help="LoRA rank."),
    alpha: int = typer.Option(16, help="LoRA alpha."),
    targets: str = typer.Option("q_proj,k_proj,v_proj,o_proj", help="Modules that get LoRA weights."),
    lr: float = typer.Option(3e-4, help="Peak learning rate (linear warm-up and decay)."),
    epochs: float = typer.Option(1.0, help="Passes over the training examples."),
    batch_size: int = typer.Option(4, help="Examples per step."),
    eval_every: int = typer.Option(50, help="Validate every N steps."),
    patience: int = typer.Option(3, help="Stop after N validations without gain."),
    max_minutes: Optional[float] = typer.Option(None, help="Stop training after this many minutes."),
    max_prompt_tokens: int = typer.Option(800, help="Prompt token budget (history is cut to fit)."),
    prompts_dir: Optional[str] = typer.Option(None, help="Your prompts folder (the adapter learns these templates)."),
    seed: int = typer.Option(0, help="Seed for sampling, negatives, shuffles and initialisation."),
    layers: Optional[int] = typer.Option(None, help="LoRA on the top N layers only (faster: backward stops there)."),
    config: Optional[str] = typer.Option(None, help="An eval config: train on its data and split, with its "
                                         "retriever's top --candidates and their evidence (PATH replaces its data)."),
    candidates: int = typer.Option(20, help="With --config: candidates per example (the retriever's top N)."),
    evidence: bool = typer.Option(True, help="The retriever's evidence about each candidate in the prompts "
                                  "(visits, popularity, what follows the last item...), as inference shows it."),
    order: str = typer.Option("retriever", help="With --config: candidates in the retriever's order, as a "
                              "reranker's first pass shows them (events it missed are left out), or 'shuffled'."),
    protocol: Optional[str] = typer.Option(None, help="With --config: examples shaped like its 'full' protocol "
                                           "(the retriever's top N) or 'sampled' (true item + the config's random "
                                           "negatives); default: full when the config runs it."),
    init_adapter: Optional[str] = typer.Option(None, help="Continue training this adapter (keeps its rank, "
                                               "modules and layers)."),
    depart_weight: float = typer.Option(1.0, help="Loss weight of examples whose answer is not the first candidate "
                                        "(with candidates in the retriever's order: where it must be departed from)."),
    select: str = typer.Option("NDCG@10", help="Validation metric that picks the kept adapter: 'NDCG@10' (the model "
                               "alone) or 'fused NDCG@10' (fused with the retriever's scores, at the best weight)."),
) -> None:
    """Train a LoRA adapter on the ranking task; serve it with `promptrec rerank --adapter OUT` or
    Reranker(adapter=OUT)."""
    from promptrec.finetune import LoraConfig
    from promptrec.finetune import finetune as run

    with user_errors():
        cfg = LoraConfig(rank=rank, alpha=alpha, target_modules=[t.strip() for t in targets.split(",")],
                         learning_rate=lr, epochs=epochs, batch_size=batch_size, eval_every=eval_every,
                         patience=patience, max_minutes=max_minutes, seed=seed, layers=layers,
                         init_adapter=init_adapter, depart_weight=depart_weight, select=select)
        if config is not None:
            from promptrec.eval.finetune_config import finetune_on_config

            m = finetune_on_config(config, out=out, data=path, model=model, examples=examples, valid_examples=valid,
                                   candidates=candidates, evidence=evidence, order=order, protocol=protocol,
                                   prompts_dir=prompts_dir,
                                   max_prompt_tokens=max_prompt_tokens, lora=cfg)
        else:
            m = run(path, out=out, format="demo" if path is None else format, model=model, task=task,
                    examples=examples, valid_examples=valid, hard_negatives=hard_negatives,
                    random_negatives=random_negatives, evidence=evidence, prompts_dir=prompts_dir,
                    max_prompt_tokens=max_prompt_tokens, lora=cfg, seed=seed)
    before, best = m["validation"]["before_training"] or {}, m["validation"]["best"] or {}
    console.print(kv_table(f"adapter written to {out}", {
        "base model": m["base_model"]["name"], "examples": m["data"]["train_examples"],
        "steps": f"{m['run']['steps']} of {m['run']['planned_steps']} ({m['run']['stopped']})",
        "validation NDCG@10": f"{before.get('NDCG@10', float('nan')):.4f} before -> {best.get('NDCG@10', float('nan')):.4f} "
                              f"best (step {best.get('step', '-')})",
        "minutes": f"{m['run']['seconds'] / 60:.1f}"}))


def finetune_sanity(
    out: str = typer.Option("runs/sanity", help="Folder for the adapter and sanity.json (record and curve)."),
    candidates: int = typer.Option(20, help="Candidates per example."),
    examples: int = typer.Option(400, help="Training examples."),
    valid: int = typer.Option(100, help="Validation examples."),
    lr: float = typer.Option(2e-3, help="Peak learning rate."),
    layers: Optional[int] = typer.Option(8, help="LoRA on the top N layers only."),
    targets: str = typer.Option("q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", help="LoRA modules."),
    eval_every: int = typer.Option(25, help="Validate every N steps."),
    seed: int = typer.Option(0, help="Seed."),
    model: Optional[str] = typer.Option(None, help="Base model: a packaged name (SmolLM2-135M-Instruct, gemma-3-270m) or a "
                                                   "folder (default: SmolLM2-135M-Instruct)."),
) -> None:
    """The sanity task: the answer is written in the evidence; a correct pipeline reaches HR@1 near 1."""
    import json
    from pathlib import Path

    from promptrec.finetune import LoraConfig
    from promptrec.finetune.sanity import run_sanity

    with user_errors():
        cfg = LoraConfig(learning_rate=lr, layers=layers, target_modules=[t.strip() for t in targets.split(",")],
                         eval_every=eval_every, patience=100, seed=seed)
        record = run_sanity(out, model=model, candidates=candidates, examples=examples, valid_examples=valid,
                            lora=cfg, seed=seed)
        Path(out, "sanity.json").write_text(json.dumps(record, indent=2, default=str))
        from promptrec.finetune.curves import plot_training

        plot_training(record["history"], Path(out, "sanity_curve.png"), f"sanity task, {candidates} candidates")
    best = record["best"] or {}
    console.print(kv_table(f"sanity task, {candidates} candidates", {
        "steps": record["steps"], "minutes": f"{record['seconds'] / 60:.1f}",
        "validation HR@1": f"{record['history'][0]['HR@1']:.3f} before -> {best.get('HR@1', float('nan')):.3f} best"}))


def finetune_merge(
    adapter: str = typer.Argument(..., help="An adapter folder from `promptrec finetune`."),
    out: Optional[str] = typer.Option(None, help="Folder for the merged model (default: promptrec's model cache)."),
    model: Optional[str] = typer.Option(None, help="Base model (default: the one the adapter's manifest names)."),
) -> None:
    """Merge a LoRA adapter into its base model's weights: a plain model folder that serves at base speed
    (e.g. `vllm serve OUT`); rerankers do this by themselves for vLLM on CPU."""
    from promptrec.reranker.merge import merge_adapter

    with user_errors():
        path = merge_adapter(adapter, model, out)
    console.print(f"merged model written to {path}")
