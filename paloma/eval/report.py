"""Results where teams look: lm-evaluation-harness's results layout, Weights & Biases, TensorBoard.

Pure views of a results dict (results.json's structure); the loggers are imported only when asked for, and
`check_available` runs before any work so that a missing package fails in the first second, not after hours.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

from paloma.errors import PalomaError
from paloma.eval.results import Results
from paloma.io import write_json

LM_EVAL_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")
PACKAGES = {"wandb": "wandb", "tensorboard": "tensorboard"}


def check_available(wandb: bool = False, tensorboard: bool = False) -> None:
    """A clear error now (before data is read) if a logger asked for is not installed."""
    import importlib.util

    for wanted, package in ((wandb, "wandb"), (tensorboard, "tensorboard")):
        if wanted and importlib.util.find_spec(package) is None:
            raise PalomaError(f"--{package}: the {package} package is not installed (pip install 'paloma-eval[log]')")


def lm_eval_layout(results: dict, model: str) -> dict:
    """lm-evaluation-harness's results file: one `paloma_<source>` task per source, its metrics keyed
    `<metric>,none` and aggregated as lm-eval aggregates them (over all the task's documents: Σ NLL over Σ
    words or bytes), with the Paloma protocol they were computed under kept beside them (lm-eval's own
    `paloma_*` tasks score differently: BOS prefix, the model's maximum length)."""
    tasks: dict[str, dict] = {}
    samples: dict[str, dict] = {}
    for source, entry in results["sources"].items():
        domains = entry["domains"].values()
        nll = sum(m["nll_sum"] for m in domains)
        words, n_bytes = sum(m["words"] for m in domains), sum(m["bytes"] for m in domains)
        task = f"paloma_{source}"
        tasks[task] = {
            "alias": task,
            "word_perplexity,none": math.exp(nll / words) if words else None,
            "word_perplexity_stderr,none": "N/A",
            "byte_perplexity,none": math.exp(nll / n_bytes) if n_bytes else None,
            "byte_perplexity_stderr,none": "N/A",
            "bits_per_byte,none": nll / n_bytes / math.log(2) if n_bytes else None,
            "bits_per_byte_stderr,none": "N/A",
        }
        samples[task] = {"original": entry["documents"], "effective": entry["documents"]}
    return {
        "results": tasks,
        "group_subtasks": {task: [] for task in tasks},
        "versions": {task: 1 for task in tasks},
        "n-shot": {task: 0 for task in tasks},
        "higher_is_better": {task: dict.fromkeys(LM_EVAL_METRICS, False) for task in tasks},
        "n-samples": samples,
        "config": {"model": "paloma", "model_args": f"pretrained={model}", "batch_size": None},
        "date": datetime.now(timezone.utc).timestamp(),
        "paloma": {"protocol": results.get("protocol"), "data": results.get("data")},
    }


def write_lm_eval_results(path: Path, results: dict, model: str) -> None:
    write_json(Path(path), lm_eval_layout(results, model))


def log_wandb(results: dict, project: str, name: str | None = None, step: int = 0) -> None:
    """One W&B run holding the scalars at `step` (offline when WANDB_MODE=offline), the protocol as its config."""
    import wandb

    run = wandb.init(project=project, name=name, config={"paloma_protocol": results.get("protocol")}, reinit=True)
    run.log(Results(results).scalars(), step=step)
    run.finish()


def log_tensorboard(results: dict, folder: Path, step: int = 0) -> None:
    """The scalars as TensorBoard events in `folder`."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    for key, value in Results(results).scalars().items():
        writer.add_scalar(key, value, global_step=step)
    writer.close()
