"""Peak memory and time to tokenize one long document: whole (as before) against in pieces (`paloma.eval.tokens`).

One document of `--megabytes` MB (default 20, the size that needed 3.96 GB and 58 s whole) is built from real
text (Python's bundled documentation and standard-library sources, repeated) and tokenized by a byte-level BPE
tokenizer trained here (GPT-NeoX/OLMo's pre-tokenizer, `--vocab` entries). Each way runs in its own process;
its peak resident set size (ru_maxrss) is reported with the resident size before tokenizing (Python, the
libraries and the text itself), and both ways' ids are compared (equal, or the benchmark fails).

Usage: python benchmarks/long_document.py [--megabytes 20] [--vocab 8192]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def real_text(megabytes: float) -> str:
    """Documentation prose and library source, repeated to the size asked."""
    import argparse as argparse_module
    import json as json_module
    from pydoc_data.topics import topics

    base = "\n\n".join(topics[k] for k in sorted(topics))
    base += "".join(Path(inspect.getsourcefile(m)).read_text() for m in (argparse_module, inspect, json_module))
    size = int(megabytes * 2**20)
    return (base * (size // len(base) + 1))[:size]


def train(folder: Path, vocab: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tokenizer.train_from_iterator(real_text(2).splitlines(), trainer)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>").save_pretrained(folder)


def child(way: str, tokenizer_dir: str, megabytes: float) -> None:
    """Tokenize one document one way; print JSON with peak RSS, RSS before, seconds and an ids digest."""
    import numpy as np
    from transformers import AutoTokenizer

    from paloma.eval import tokens

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    text = real_text(megabytes)
    before = _rss_now()
    started, cpu = time.perf_counter(), time.process_time()
    if way == "whole":
        ids = np.asarray(tokens._encode(tokenizer, [("doc", text)])[0], dtype=np.int32)
    else:
        store = tokens.tokenize(tokenizer, [("doc", text)], 1, None, "key", show_progress=False)
        ids = np.asarray(store.ids)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    digest = hashlib.sha256(ids.tobytes()).hexdigest()[:16]
    print(json.dumps({"way": way, "peak": peak, "before": before, "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "tokens": len(ids), "chars": len(text), "ids": digest}))  # fmt: skip


def _rss_now() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--child", nargs=2, metavar=("WAY", "TOKENIZER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.megabytes)
        return
    with tempfile.TemporaryDirectory() as tmp:
        train(Path(tmp) / "tokenizer", args.vocab)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        rows = []
        for way in ("whole", "pieces"):
            command = [sys.executable, __file__, "--megabytes", str(args.megabytes), "--child", way, f"{tmp}/tokenizer"]
            rows.append(json.loads(subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; one document of {args.megabytes} MB, "
          f"{rows[0]['tokens']:,} tokens (vocabulary {args.vocab})")  # fmt: skip
    for row in rows:
        print(f"{row['way']:>6}: peak RSS {row['peak'] / 2**30:.2f} GiB (before tokenizing {row['before'] / 2**30:.2f}"
              f" GiB, +{(row['peak'] - row['before']) / 2**30:.2f}), {row['seconds']:.1f} s wall, "
              f"{row['cpu_seconds']:.1f} s CPU")  # fmt: skip
    whole, pieces = rows
    assert whole["ids"] == pieces["ids"] and whole["tokens"] == pieces["tokens"], "pieces changed the ids"
    print(
        f"ids identical; peak ratio whole/pieces {whole['peak'] / pieces['peak']:.1f}×, "
        f"time ratio {whole['seconds'] / pieces['seconds']:.2f}×"
    )


if __name__ == "__main__":
    main()
