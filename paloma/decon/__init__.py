"""Decontamination of pretraining data against Paloma (reference §5), exact and portable.

    from paloma.decon import build_index, ContaminationIndex

    index = build_index("path/to/paloma")          # or "allenai/paloma"; rule_set="dolma" (default) or "strict"
    index.save("paloma.decon")
    index = ContaminationIndex.load("paloma.decon")
    index.is_contaminated(document_text)           # the per-document decision
    index.find(document_text)                      # what matched, and which evaluation documents hold it

    decide(index, texts)                           # a batch of documents at once: (removed mask, hits, sizes)
    filter_files(index, ["corpus/"], "cleaned/", workers=4)   # JSONL(.gz/.zst), Parquet, datasets folders
                                                   # (resume=True / overwrite=True for a folder with a run)
    verify_files(index, ["cleaned/kept"], fraction=0.1)

The `paloma decon` command is a thin wrapper around these functions; docs/decon.md describes the rules.

Modules, evaluation side first:
    evaldata   Paloma's release layout read from a folder or the hub (the paragraphs to index)
    rules      which evaluation paragraphs are indexed: named, versioned rule sets (dolma, strict, n-grams)
    hashing    stable XXH3-128 paragraph hashes
    index      the contamination index file: a sorted hash set and the map back to evaluation documents
    remote     indexes on s3://, gs://, hf://, fetched once through fsspec into a verified cache
    decision   the per-document decision, a pure function of (index, texts)
    readers    training data in: JSON lines (plain, .gz, .zst), Parquet, `datasets` folders, local or in buckets
    writers    the filter's outputs in the input's format, each committed whole (`paloma.outputs`)
    filter     the per-file runner and the parallel, resumable driver over many files
    verify     re-checking a cleaned corpus against an index
    datatrove  the decision as a datatrove pipeline step
"""

from paloma.decon.decision import decide
from paloma.decon.filter import filter_files
from paloma.decon.index import ContaminationIndex, Match, Origin, build_index, load_index
from paloma.decon.rules import RULE_SETS, count_word_segments, is_eligible, rule_set
from paloma.decon.verify import verify_files

__all__ = [
    "RULE_SETS",
    "ContaminationIndex",
    "Match",
    "Origin",
    "build_index",
    "count_word_segments",
    "decide",
    "filter_files",
    "is_eligible",
    "load_index",
    "rule_set",
    "verify_files",
]
