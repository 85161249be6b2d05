"""The n-gram overlap mode (issue 22, item 2): GPT-3's and The Pile's 13-gram rule, checked against datatrove.

`paloma decon index --ngram 13` indexes every 13 consecutive normalised words of the evaluation data (and of
extra evaluation sets given as JSON lines); the filter removes a training document that shares any of them.
The independent reference is datatrove's own n-gram decontamination (its normalisation, n-grams, hash and
index files), configured to the same rule, on a planted corpus the decisions of which are known by design.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paloma.decon import ContaminationIndex, build_index
from paloma.decon.decision import decide
from paloma.decon.filter import REPORT_NAME, filter_files
from paloma.decon.rules import ngram_keys, ngram_words
from paloma.errors import PalomaError
from tests.decon_data import datatrove_ngram_decisions, jsonl_lines, ngram_corpus, run_cli, write_jsonl_gz

pytest.importorskip("datatrove")


def paloma_folder(root: Path, texts: list[str]) -> Path:
    write_jsonl_gz(root / "c4_en" / "val" / "val.jsonl.gz", [{"text": t, "id": f"c4-{i}"} for i, t in enumerate(texts)])
    return root


def extra_file(path: Path, texts: list[str]) -> Path:
    path.write_bytes(jsonl_lines([{"text": t, "id": f"task-{i}", "task": "my_task"} for i, t in enumerate(texts)]))
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    """A planted corpus (seed unused elsewhere), its n-gram index (Paloma layout + an --extra set) and corpus file."""
    tmp = tmp_path_factory.mktemp("ngram")
    corpus = ngram_corpus(seed=2207)
    half = len(corpus.eval_texts) // 2
    data = paloma_folder(tmp / "paloma", corpus.eval_texts[:half])
    extra = extra_file(tmp / "tasks.jsonl", corpus.eval_texts[half:])
    index = build_index(data, ngram=13, extra=[extra], progress=False).save(tmp / "ngram.decon")
    train = tmp / "corpus" / "train.jsonl"
    train.parent.mkdir()
    train.write_bytes(jsonl_lines([{"text": t, "id": i} for i, t in enumerate(corpus.train_texts)]))
    return corpus, index, train, tmp


def test_decisions_equal_datatrove_ngram_decontamination(planted):
    corpus, index, train, tmp = planted
    report = filter_files(index, [train.parent], tmp / "out", progress=False)
    removed = {json.loads(line)["id"] for line in (tmp / "out" / "removed" / "train.jsonl").read_bytes().splitlines()}
    reference = datatrove_ngram_decisions(corpus.eval_texts, corpus.train_texts, 13, tmp / "datatrove")
    assert [i in removed for i in range(len(corpus.train_texts))] == reference
    # the planted corpus makes the comparison count: every copied 13-gram is found, no 12-word copy is
    assert reference == [kind == "full" for kind in corpus.planted]
    assert report["totals"]["removed_documents"] == corpus.planted.count("full") > 50
    assert {h["source"] for h in report["hits_by_domain"]} == {"c4_en", "extra"}


def test_the_index_records_the_rule_and_the_extra_sets(planted):
    _, index_path, _, _tmp = planted
    header = ContaminationIndex.load(index_path).header
    assert header["rules"]["match"] == "ngram" and header["rules"]["ngram"] == 13
    assert "P* and S*" in header["rules"]["ngram_normalisation"]
    assert header["data"]["extra"][0]["file"] == "tasks.jsonl"
    assert ["extra", "my_task"] in header["domains"]


def test_normalisation_and_what_counts_as_sharing_an_ngram(tmp_path: Path):
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "the",
        "lazy",
        "dog",
        "near",
        "a",
        "quiet",
        "river",
        "bank",
    ]
    index = build_index(paloma_folder(tmp_path / "p", [" ".join(words)]), ngram=13, progress=False)
    first13, last12 = " ".join(words[:13]), " ".join(words[2:14])
    cases = {
        first13: True,
        first13.upper().replace(" ", ", "): True,  # case and punctuation are normalised away
        "\n".join(words[:13]): True,  # n-grams span paragraphs (newlines are whitespace)
        "—".join(words[:13]): True,  # Unicode punctuation (P*) separates words like a space
        f"intro words. {first13}!": True,
        last12: False,  # twelve shared words are not an overlap
        " ".join([*words[:6], "INSERTED", *words[6:13]]): False,
        "thequick " + " ".join(words[1:13]): False,  # a joined word is another word
    }
    removed, _, _ = decide(index, list(cases))
    assert dict(zip(cases, removed.tolist(), strict=True)) == cases
    assert ngram_words("Don't—stop: 3.5%") == ["don", "t", "stop", "3", "5"]
    assert ngram_keys("a b c", 2) == [b"a b", b"b c"] and ngram_keys("a b", 3) == []


def test_cli_index_and_filter_with_ngram(planted, tmp_path: Path):
    corpus, _, train, tmp = planted
    extra = extra_file(tmp_path / "tasks.jsonl", corpus.eval_texts[len(corpus.eval_texts) // 2 :])
    result = run_cli(
        "decon", "index", tmp / "paloma", "--ngram", "13", "--extra", extra, "-o", tmp_path / "i.decon", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert "13-grams" in result.stdout
    run_cli("decon", "filter", train, "-i", tmp_path / "i.decon", "-o", tmp_path / "out", "--quiet", check=True)
    report = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert report["totals"]["removed_documents"] == corpus.planted.count("full")
    assert report["index"]["rules"]["ngram"] == 13


def test_ngram_does_not_combine_with_normalised_paragraphs(tmp_path: Path):
    with pytest.raises(PalomaError, match="does not combine with --match normalised"):
        build_index(paloma_folder(tmp_path / "p", ["a b c"]), ngram=3, match="normalised", progress=False)


def test_the_ascii_fast_path_normalises_as_the_general_rule():
    """ASCII text is normalised as bytes; on every ASCII character mix (controls and U+001C-U+001F included)
    the n-grams are those of the general rule: lower case, P*/S* to spaces, str.split()."""
    import random

    rng = random.Random(22)
    for _ in range(2000):
        text = "".join(chr(rng.randrange(128)) for _ in range(rng.randint(0, 120)))
        words = ngram_words(text)
        for n in (1, 3, 13):
            expected = [" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)]
            assert ngram_keys(text, n) == expected, (text, n)
