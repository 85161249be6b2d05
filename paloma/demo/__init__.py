"""`paloma demo`: the whole benchmark, offline, on text already on this machine (docs/demo.md).

texts      where the suite's text comes from (Python's Language Reference, stdlib docstrings and code,
           licences of installed packages): documents in a canonical order
suite      those documents laid out as a small benchmark in Paloma's layout, plus a training corpus
tokenizer  a small byte-level BPE trained on the training part, with the baselines' special tokens
pipeline   the stages in order: suite → decon → train a ladder → eval → ladder fit → submissions → site
"""
