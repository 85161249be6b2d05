"""The stages of `paloma eval`, one module each, in the order data flows through them.

    data      documents of a split, streamed from the Paloma layout or generic JSONL/Parquet, and a compact
              per-document index (domain, id, bytes, characters, words: arrays, not Python objects)
    tokens    token ids of the selected documents in an on-disk, memory-mapped cache
    windows   the token windows of one document: a pure function of its length and L
    plan      every window of every document, sorted and packed into batches; documents split across processes
    model     loading a causal LM (and converting legacy checkpoints), the checks that keep numbers honest
    scoring   a model and a batch of windows in, −log p of every scored target out
    run       the scoring loop of one process: batches → per-document sums → records on disk
    records   per-document records on disk: appended as documents finish, read back in one pass

`paloma.evaluate` orchestrates them; aggregation (`paloma.metrics`) and results (`paloma.results`) are pure
functions of the records.
"""
