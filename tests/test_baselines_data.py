"""The data pipeline: packing, the disk cache, decontamination with a real `paloma decon` index, global order."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from baselines.config import load_config
from baselines.data import GlobalOrder, load_decontamination, load_tokenizer, open_corpus, prepare_data
from paloma.decon import build_index
from paloma.errors import PalomaError
from tests.baselines_helpers import stdlib_documents, train_tokenizer, write_corpus

SEQ = 64


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return stdlib_documents()


@pytest.fixture(scope="module")
def tokenizer_dir(docs: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(docs, tmp_path_factory.mktemp("tok"), vocab_size=512)


def config_for(corpus: Path, tokenizer_dir: Path, **extra: object):
    overrides = [f"data.corpus={corpus}", f"data.tokenizer={tokenizer_dir}", "model.vocab_size=512"]
    overrides += [f"train.seq_len={SEQ}", "data.shard_tokens=4096"] + [f"{k}={v}" for k, v in extra.items()]
    return load_config("tiny", overrides)


def expected_stream(texts: list[str], tokenizer) -> np.ndarray:
    """Each document's tokens then EOS (id 0), concatenated, cut to whole sequences: written out independently."""
    stream: list[int] = []
    for text in texts:
        stream += [*tokenizer.encode(text, add_special_tokens=False), 0]
    return np.array(stream[: len(stream) // SEQ * SEQ])


def packed_stream(data) -> np.ndarray:
    return np.concatenate([data.instance(i) for i in range(len(data))])


def test_packed_instances_are_the_eos_separated_documents_in_order(docs, tokenizer_dir, tmp_path: Path) -> None:
    config = config_for(write_corpus(tmp_path / "corpus.jsonl", docs), tokenizer_dir)
    tokenizer = load_tokenizer(str(tokenizer_dir))
    data = prepare_data(config, tmp_path / "cache", open_corpus(config.data), tokenizer)
    np.testing.assert_array_equal(packed_stream(data), expected_stream(docs, tokenizer))
    assert len(data.manifest["shards"]) > 1  # 4096-token shards: the stream spans many files
    assert data.manifest["documents_read"] == len(docs) and data.manifest["documents_removed"] == 0


def test_the_cache_is_reused_and_keyed_by_what_shapes_the_tokens(docs, tokenizer_dir, tmp_path: Path) -> None:
    config = config_for(write_corpus(tmp_path / "corpus.jsonl", docs[:50]), tokenizer_dir)
    tokenizer = load_tokenizer(str(tokenizer_dir))
    first = prepare_data(config, tmp_path / "cache", open_corpus(config.data), tokenizer)

    def must_not_read():
        raise AssertionError("the corpus was read again although the cache holds it")

    again = prepare_data(config, tmp_path / "cache", must_not_read, tokenizer)
    assert again.root == first.root and len(again) == len(first)
    longer = config_for(tmp_path / "corpus.jsonl", tokenizer_dir, **{"train.seq_len": 2 * SEQ})
    other = prepare_data(longer, tmp_path / "cache", open_corpus(longer.data), tokenizer)
    assert other.root != first.root and other.seq_len == 2 * SEQ


def test_max_tokens_stops_reading_the_corpus(docs, tokenizer_dir, tmp_path: Path) -> None:
    config = config_for(write_corpus(tmp_path / "c.jsonl", docs), tokenizer_dir, **{"data.max_tokens": 10 * SEQ})
    data = prepare_data(config, tmp_path / "cache", open_corpus(config.data), load_tokenizer(str(tokenizer_dir)))
    assert len(data) == 10 and data.manifest["documents_read"] < len(docs)


def write_paloma(root: Path, paragraphs: list[str]) -> Path:
    """A Paloma-layout folder (one source, both splits) whose documents hold the given paragraphs."""
    for split, part in (("val", paragraphs[::2]), ("test", paragraphs[1::2])):
        path = root / "c4_en" / split / f"{split}-00000000.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            for i, paragraph in enumerate(part):
                handle.write(json.dumps({"id": f"{split}-{i}", "text": f"Evaluation header\n{paragraph}"}) + "\n")
    return root


def test_decontaminated_documents_never_reach_the_packed_data(docs, tokenizer_dir, tmp_path: Path) -> None:
    # Evaluation paragraphs: the longest line of every 10th document, where it has 13+ words (eligible).
    long_lines = [max(doc.split("\n"), key=lambda line: len(line.split())) for doc in docs[::10]]
    long_lines = [line for line in long_lines if len(line.split()) >= 13]
    index_path = build_index(write_paloma(tmp_path / "paloma", long_lines), progress=False).save(tmp_path / "i.decon")
    contaminated = [any(line in long_lines for line in doc.split("\n")) for doc in docs]
    assert 5 <= sum(contaminated) < len(docs) // 5

    config = config_for(
        write_corpus(tmp_path / "corpus.jsonl", docs), tokenizer_dir, **{"data.decontamination_index": index_path}
    )
    check, checksum = load_decontamination(config.data.decontamination_index)
    tokenizer = load_tokenizer(str(tokenizer_dir))
    data = prepare_data(config, tmp_path / "cache", open_corpus(config.data), tokenizer, check, checksum)

    kept = [doc for doc, bad in zip(docs, contaminated, strict=True) if not bad]
    np.testing.assert_array_equal(packed_stream(data), expected_stream(kept, tokenizer))
    assert data.manifest["documents_removed"] == sum(contaminated)
    assert data.manifest["decontamination_checksum"] == checksum
    packed = ",".join(map(str, packed_stream(data)))
    for doc, bad in zip(docs, contaminated, strict=True):
        if bad:  # no removed document's opening 24 tokens occur anywhere in the packed data
            assert ",".join(map(str, tokenizer.encode(doc)[:24])) not in packed


def test_missing_decontamination_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PalomaError, match=r"decontamination index .*missing\.decon: no such file"):
        load_decontamination(str(tmp_path / "missing.decon"))


@pytest.mark.parametrize("batch", [8, 12, 2112])
def test_each_steps_global_batch_is_the_same_for_any_number_of_processes(batch: int) -> None:
    order = GlobalOrder(num_instances=1000, seed=6198)
    for step in (1, 2, 7, 120):  # step 120 with batch 12 lies in the second epoch
        single = order.step_instances(step, batch)
        for world in (2, 4) if batch != 2112 else (2, 4, 64):
            shares = [order.step_instances(step, batch, rank, world) for rank in range(world)]
            assert sorted(i for share in shares for i in share) == sorted(single)
            # rank r takes global positions r, r+W, ...: interleaving the shares gives the global order back
            assert [shares[i % world][i // world] for i in range(batch)] == single


def test_one_epoch_visits_every_instance_once_and_epochs_are_reshuffled() -> None:
    order = GlobalOrder(num_instances=96, seed=1)
    epoch0 = [i for s in range(1, 13) for i in order.step_instances(s, 8)]
    epoch1 = [i for s in range(13, 25) for i in order.step_instances(s, 8)]
    assert sorted(epoch0) == sorted(epoch1) == list(range(96))
    assert epoch0 != epoch1 and epoch0 != list(range(96))
    assert GlobalOrder(96, seed=1).step_instances(5, 8) == order.step_instances(5, 8)  # a pure function of the seed
    assert GlobalOrder(96, seed=2).step_instances(5, 8) != order.step_instances(5, 8)


def test_local_parquet_and_bad_records_name_the_file_and_line(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["first document", "second document"]}), tmp_path / "part.parquet")
    config = load_config("tiny", [f"data.corpus={tmp_path}", "data.text_field=content"])
    assert list(open_corpus(config.data)()) == ["first document", "second document"]
    bad = tmp_path / "bad" / "docs.jsonl"
    bad.parent.mkdir()
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    config = load_config("tiny", [f"data.corpus={bad}"])
    with pytest.raises(PalomaError, match=r"docs\.jsonl:2: field 'text' is missing"):
        list(open_corpus(config.data)())
    with pytest.raises(PalomaError, match="no such file or folder"):
        open_corpus(load_config("tiny", [f"data.corpus={tmp_path / 'nope.jsonl'}"]).data)
