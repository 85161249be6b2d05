"""`paloma eval`: the stages, one module each, in the order data flows through them (docs/architecture.md).

    data         documents of a split, streamed from the Paloma layout or generic JSONL/Parquet, and a compact
                 per-document index (domain, id, bytes, characters, words: arrays, not Python objects)
    tokens       token ids of the selected documents in an on-disk, memory-mapped cache
    windows      the token windows of one document: a pure function of its length and L
    plan         every window of every document, sorted and packed into batches; documents split across processes
    model        loading a causal LM from a folder or the hub, the checks that keep numbers honest
    olmo         the OLMo architecture of the Paloma baselines and its one exact `transformers` representation
    hf_olmo      the released `hf_olmo` checkpoints converted into that representation, without remote code
    sequences    a document's scored sequence (prefix, added special tokens, its tokens) and batches gathered from it
    scoring      a model and a batch of windows in, −log p of every scored target out
    loop         the scoring loop of one process: batches → per-document sums → records on disk
    records      per-document records on disk: appended as documents finish, read back in one pass
    token_stats  optional per-token-type loss sums (`--token-stats`) for `paloma tokens report`
    results      results.json / domains.csv and the printed table: pure functions of aggregated records
    report       lm-evaluation-harness's results layout, W&B and TensorBoard views of results
    live         a model in memory as trainers hold it (adapters, DDP/compile unwrapping, FSDP, ranks)
    evaluate     the orchestrator: checks, then data → tokens → plan → model → loop → records → results;
                 `Evaluator` prepares once and scores models in memory through the same loop

Aggregation itself (`paloma.metrics`) and the protocol (`paloma.protocol`) sit at the top level because
submissions, the site and the analyses use them too. A "run" is one `paloma eval` output folder.
"""
