"""Decontamination of pretraining data against Paloma (reference §5), exact and portable.

    from paloma.decon import build_index, ContaminationIndex

    index = build_index("path/to/paloma")          # or "allenai/paloma" (gated hub dataset)
    index.save("paloma.decon")
    index = ContaminationIndex.load("paloma.decon")
    index.is_contaminated(document_text)           # the per-document decision
    index.find(document_text)                      # what matched, and which evaluation documents hold it

`filter_files` runs the decision over JSONL(.gz/.zst), Parquet and `datasets` folders; the `paloma decon`
command is a thin wrapper around these functions.
"""

from paloma.decon.index import ContaminationIndex, Match, Origin, build_index, load_index
from paloma.decon.rules import count_word_segments, is_eligible

__all__ = [
    "ContaminationIndex",
    "Match",
    "Origin",
    "build_index",
    "count_word_segments",
    "is_eligible",
    "load_index",
]
