"""Does a baselines export load, and compute the same function, under other `transformers` versions? By hand:

    python benchmarks/check_export_transformers.py 5.0.0 5.24.0 [--cache /tmp/tf-versions]

The dev environment holds one transformers version, so the lowest version pyproject.toml allows is checked
here rather than in a pytest test (a test must not download); `.ci/run` runs it for pyproject's lower bound
and the installed version after the tests. For each version: `pip install --no-deps --target`
puts that transformers into its own folder (with a matching huggingface_hub where it needs another); an
export of a random small model (written by the installed transformers, as `paloma train` writes it) is then
loaded in a fresh process that imports that version first, with plain `AutoModelForCausalLM.from_pretrained`
(no remote code), and its log-probabilities are compared with our own model's. Prints one row per version;
record the result in docs/baselines.md and set the lower bound in pyproject.toml to what passed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paloma.eval.olmo import write_transformers
from paloma_baselines.config import load_config
from paloma_baselines.model import Transformer

LOADER = textwrap.dedent(
    """
    import json, sys, torch, transformers
    from transformers import AutoModelForCausalLM
    export, ids_file = sys.argv[1], sys.argv[2]
    try:
        model = AutoModelForCausalLM.from_pretrained(export)
    except Exception as err:
        print(json.dumps({"version": transformers.__version__, "error": f"{type(err).__name__}: {err}"[:300]}))
        sys.exit(0)
    ids = torch.load(ids_file)
    with torch.no_grad():
        logp = model(ids).logits.float().log_softmax(-1)
    torch.save(logp, ids_file + ".theirs")
    print(json.dumps({"version": transformers.__version__, "class": type(model).__name__,
                      "file": transformers.__file__}))
    """
)


def install(version: str, cache: Path) -> Path:
    """transformers==version in its own folder, plus any of its requirements that this environment's versions
    do not satisfy (e.g. an older tokenizers), each at the newest version its specifier allows."""
    target = cache / f"transformers-{version}"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target", str(target)]
    if not (target / "transformers").is_dir():
        subprocess.run([*pip, f"transformers=={version}"], check=True)
    for requirement in unmet_requirements(target):
        subprocess.run([*pip, requirement], check=True)
    return target


def unmet_requirements(target: Path) -> list[str]:
    """transformers' own requirements (not extras) that the installed packages fail, read in a process that
    sees the target folder first."""
    probe = textwrap.dedent(
        """
        import importlib.metadata as m, json, sys
        from packaging.requirements import Requirement
        unmet = []
        for text in m.requires("transformers") or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                installed = m.version(req.name)
            except m.PackageNotFoundError:
                installed = None
            if installed is None or not req.specifier.contains(installed, prereleases=True):
                unmet.append(f"{req.name}{req.specifier}")
        print(json.dumps(unmet))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env={"PYTHONPATH": str(target)}, check=True
    )
    return json.loads(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="+")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "paloma-tf-versions")
    args = parser.parse_args()
    config = load_config("tiny", ["model.vocab_size=256", "model.n_heads=4"]).model
    torch.manual_seed(0)
    model = Transformer(config)
    with torch.no_grad():  # biases and a shifted embedding, so that every rewrite of the export is exercised
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.5)
        model.transformer.wte.weight.add_(0.7)
    ids = torch.randint(0, 256, (3, 50), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(ids).log_softmax(-1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export = write_transformers(model.state_dict(), config, Path(tmp) / "export", training={"steps": 0})
        ids_file = Path(tmp) / "ids.pt"
        torch.save(ids, ids_file)
        for version in args.versions:
            target = install(version, args.cache)
            proc = subprocess.run(
                [sys.executable, "-c", LOADER, str(export), str(ids_file)],
                capture_output=True, text=True, env={"PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"},
            )  # fmt: skip
            if proc.returncode != 0 or not proc.stdout.strip():
                rows.append({"requested": version, "error": proc.stderr.strip().splitlines()[-1][:300]})
                continue
            row = {"requested": version, **json.loads(proc.stdout.strip().splitlines()[-1])}
            if "error" not in row:
                theirs = torch.load(str(ids_file) + ".theirs")
                row["max_abs_logprob_diff"] = float((theirs - ours).abs().max())
                row["ok"] = Version(row["version"]) == Version(version) and row["max_abs_logprob_diff"] < 2e-5
            rows.append(row)
    for row in rows:
        print(json.dumps(row))
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
