"""Benchmark the n-gram overlap mode of `paloma decon` against datatrove's n-gram decontamination, side by side.

Run by hand (not in CI), from the repository root:
    PYTHONPATH=. python benchmarks/decon_ngram_bench.py --workdir /tmp/decon-ngram-bench
Prints markdown and saves JSON; docs/performance.md records the figures.

Both tools see the same planted corpus (tests/decon_data.py: random-word documents, some carrying a copied
13-gram) and the same rule (lower case, punctuation to spaces, whitespace words). datatrove's filter is its own
`NGramsDecontFilter.filter`, one document at a time as its pipeline calls it; its default xxhash-64 hash is
used through `xxh64_intdigest(text.encode())`, because its own xxhash path hands `str` to xxhash, which
xxhash >= 4 refuses. Decisions are compared document by document; times are CPU seconds of one process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from paloma.decon import ContaminationIndex, build_index
from paloma.decon.decision import decide
from tests.decon_data import WhitespaceWords, jsonl_lines, ngram_corpus, write_jsonl_gz


def datatrove_steps(eval_texts: list[str], folder: Path) -> tuple[object, float, int]:
    """datatrove's n-gram filter over an index of the evaluation texts; (step, CPU seconds to build, bytes)."""
    from types import SimpleNamespace

    import numpy as np
    import xxhash
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
    from datatrove.utils.text import TextNormConfig

    norm = TextNormConfig(norm_numbers=False, norm_unicode_diacritics=False)
    config = NGramsDecontConfig(n_grams=13, find_query_ngrams=True, norm_config=norm)
    tokenizer = WhitespaceWords()

    def hash_func(text: str) -> int:
        return xxhash.xxh64_intdigest(text.encode())

    start = time.process_time()
    indexer = SimpleNamespace(tokenizer=tokenizer, config=config, hash_func=hash_func)
    hashes = {h for text in eval_texts for h in NGramsDecontIndexer.compute_hashes(indexer, text)}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "paloma.index.hashes"
    np.array(sorted(hashes), dtype=np.uint64).tofile(path)
    step = NGramsDecontFilter(str(folder), config=config, language=tokenizer)
    step.hash_func = hash_func
    step.load_index_hashes()
    return step, time.process_time() - start, path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/decon-ngram-bench"))
    parser.add_argument("--eval-docs", type=int, default=2000)
    parser.add_argument("--train-docs", type=int, default=20000)
    parser.add_argument("--words", type=int, default=400)
    parser.add_argument(
        "--letters", default="abcdefghijklmnopqrstuvwxyz", help="word letters (add é or ü for non-ASCII text)"
    )
    args = parser.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    corpus = ngram_corpus(
        seed=20261207, eval_docs=args.eval_docs, train_docs=args.train_docs, words=args.words, letters=args.letters
    )
    write_jsonl_gz(work / "paloma" / "c4_en" / "val" / "val.jsonl.gz", [{"text": t} for t in corpus.eval_texts])
    (work / "train.jsonl").write_bytes(jsonl_lines([{"text": t} for t in corpus.train_texts]))
    text_bytes = sum(len(t.encode()) for t in corpus.train_texts)

    start = time.process_time()
    index = build_index(work / "paloma", ngram=13, progress=False).save(work / "ngram.decon")
    paloma_build = time.process_time() - start
    index = ContaminationIndex.load(index)

    step, datatrove_build, datatrove_bytes = datatrove_steps(corpus.eval_texts, work / "datatrove")

    start = time.process_time()
    paloma_removed: list[bool] = []
    for at in range(0, len(corpus.train_texts), 2048):
        paloma_removed += decide(index, corpus.train_texts[at : at + 2048])[0].tolist()
    paloma_seconds = time.process_time() - start

    from datatrove.data import Document

    start = time.process_time()
    datatrove_removed = [step.filter(Document(text=t, id=str(i))) is not True for i, t in enumerate(corpus.train_texts)]
    datatrove_seconds = time.process_time() - start

    differ = sum(a != b for a, b in zip(paloma_removed, datatrove_removed, strict=True))
    result = {
        "eval_documents": len(corpus.eval_texts),
        "indexed_ngrams": len(index),
        "train_documents": len(corpus.train_texts),
        "train_text_mb": round(text_bytes / 1e6, 1),
        "removed": sum(paloma_removed),
        "documents_that_differ": differ,
        "paloma": {
            "build_cpu_s": round(paloma_build, 2),
            "index_bytes": (work / "ngram.decon").stat().st_size,
            "filter_cpu_s": round(paloma_seconds, 2),
        },
        "datatrove": {
            "build_cpu_s": round(datatrove_build, 2),
            "index_bytes": datatrove_bytes,
            "filter_cpu_s": round(datatrove_seconds, 2),
        },
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "load_average": os.getloadavg(),
    }
    (work / "result.json").write_text(json.dumps(result, indent=1))
    p, d = result["paloma"], result["datatrove"]
    print("| | paloma `--ngram 13` | datatrove `NGramsDecontFilter` | ratio |\n| --- | --- | --- | --- |")
    print(f"| index build, CPU s | {p['build_cpu_s']} | {d['build_cpu_s']} | |")
    print(f"| index size | {p['index_bytes'] / 1e6:.1f} MB | {d['index_bytes'] / 1e6:.1f} MB | |")
    for name, seconds in (("filter, CPU s", "filter_cpu_s"),):
        print(f"| {name} | {p[seconds]} | {d[seconds]} | {d[seconds] / max(p[seconds], 1e-9):.2f}× |")
    docs = result["train_documents"]
    print(
        f"| documents/s | {docs / p['filter_cpu_s']:,.0f} | {docs / d['filter_cpu_s']:,.0f} | |\n\n"
        f"{result['indexed_ngrams']:,} indexed 13-grams, {docs:,} training documents ({result['train_text_mb']} MB), "
        f"{result['removed']:,} removed, {differ} documents differ; load average {result['load_average']}"
    )


if __name__ == "__main__":
    main()
