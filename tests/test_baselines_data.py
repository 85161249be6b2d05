"""Tokenizing (`paloma baselines tokenize`, a datatrove pipeline) and reading token files for training:
the files hold exactly the EOS-separated documents, decontamination removes what a real `paloma decon` index
matches, a killed run resumes by task, and bad input is refused with one line before any work."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paloma.decon import build_index
from paloma.errors import PalomaError
from paloma_baselines.config import load_config
from paloma_baselines.data import GlobalOrder, load_tokenizer, open_tokens
from tests.baselines_helpers import (
    expected_token_stream,
    stdlib_documents,
    tiny_tokens,
    train_tokenizer,
    write_corpus,
    write_corpus_files,
)
from tests.conftest import paloma_env

SEQ = 64


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return stdlib_documents()


@pytest.fixture(scope="module")
def tokenizer_dir(docs: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(docs, tmp_path_factory.mktemp("tok"), vocab_size=512)


def tokens_config(folder: Path):
    return load_config("tiny", ["model.vocab_size=512", f"train.seq_len={SEQ}", f"data.tokens={folder}"])


def file_streams(folder: Path) -> list[list[int]]:
    data = open_tokens(tokens_config(folder))
    return [np.fromfile(path, dtype=np.uint16).tolist() for path in data.paths]


def test_each_task_writes_its_files_documents_in_order_each_followed_by_eos(docs, tokenizer_dir, tmp_path) -> None:
    corpus = write_corpus_files(tmp_path / "corpus", docs, files=3)
    result = tiny_tokens(corpus, tokenizer_dir, tmp_path / "tokens", tasks=3)
    tokenizer = load_tokenizer(str(tokenizer_dir))
    size = -(-len(docs) // 3)
    streams = file_streams(tmp_path / "tokens")
    assert streams == [expected_token_stream(docs[k * size : (k + 1) * size], tokenizer) for k in range(3)]
    assert result.tokens == sum(map(len, streams)) and result.documents_read == len(docs)
    assert result.documents_removed == 0 and result.tasks == 3
    data = open_tokens(tokens_config(tmp_path / "tokens"))
    assert len(data) == sum(len(s) // SEQ for s in streams)  # each file's tail is dropped on its own
    assert data.instance(len(streams[0]) // SEQ).tolist() == streams[1][:SEQ]  # file 2 starts a new instance


def test_a_task_starts_a_new_file_after_shard_tokens(docs, tokenizer_dir, tmp_path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", docs)
    tiny_tokens(corpus, tokenizer_dir, tmp_path / "tokens", overrides=["data.shard_tokens=30000"])
    streams = file_streams(tmp_path / "tokens")
    assert len(streams) >= 4 and all(len(s) >= 30000 for s in streams[:-1])
    whole = expected_token_stream(docs, load_tokenizer(str(tokenizer_dir)))
    assert [t for s in streams for t in s] == whole and all(s[-1] == 0 for s in streams)  # between documents


def write_paloma(root: Path, paragraphs: list[str]) -> Path:
    """A Paloma-layout folder (one source, both splits) whose documents hold the given paragraphs."""
    for split, part in (("val", paragraphs[::2]), ("test", paragraphs[1::2])):
        path = root / "c4_en" / split / f"{split}-00000000.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            for i, paragraph in enumerate(part):
                handle.write(json.dumps({"id": f"{split}-{i}", "text": f"Evaluation header\n{paragraph}"}) + "\n")
    return root


def test_decontaminated_documents_never_reach_the_token_files(docs, tokenizer_dir, tmp_path: Path) -> None:
    # Evaluation paragraphs: the longest line of every 10th document, where it has 13+ words (eligible).
    long_lines = [max(doc.split("\n"), key=lambda line: len(line.split())) for doc in docs[::10]]
    long_lines = [line for line in long_lines if len(line.split()) >= 13]
    index_path = build_index(write_paloma(tmp_path / "paloma", long_lines), progress=False).save(tmp_path / "i.decon")
    contaminated = [any(line in long_lines for line in doc.split("\n")) for doc in docs]
    assert 5 <= sum(contaminated) < len(docs) // 5

    corpus = write_corpus_files(tmp_path / "corpus", docs, files=2)
    result = tiny_tokens(corpus, tokenizer_dir, tmp_path / "tokens", tasks=2, decontamination_index=str(index_path))
    tokenizer = load_tokenizer(str(tokenizer_dir))
    size = -(-len(docs) // 2)
    kept = [[d for d, bad in zip(docs[k * size : (k + 1) * size], contaminated[k * size :], strict=False) if not bad]
            for k in range(2)]  # fmt: skip
    assert file_streams(tmp_path / "tokens") == [expected_token_stream(part, tokenizer) for part in kept]
    assert (result.documents_read, result.documents_removed) == (len(docs), sum(contaminated))
    summary = open_tokens(tokens_config(tmp_path / "tokens")).summary()
    from paloma.decon import ContaminationIndex

    assert summary["decontamination"] == {
        "index_checksum": ContaminationIndex.load(index_path).checksum,
        "documents_read": len(docs),
        "documents_removed": sum(contaminated),
    }


def killed_writer(path: Path) -> None:
    """A process killed (SIGKILL) in the middle of writing `path` through paloma.io.atomic_write."""
    path.unlink()
    code = (
        "import os, signal, sys\nfrom paloma.io import atomic_write\n"
        "writer = atomic_write(sys.argv[1], 'wb')\nhandle = writer.__enter__()\n"
        "handle.write(b'partial')\nhandle.flush()\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], env=paloma_env())
    assert proc.returncode == -9 and not path.exists() and list(path.parent.glob(f".{path.name}.*.tmp"))


def test_a_killed_run_resumes_by_task_and_a_finished_folder_is_reused(docs, tokenizer_dir, tmp_path) -> None:
    corpus = write_corpus_files(tmp_path / "corpus", docs, files=3)
    tiny_tokens(corpus, tokenizer_dir, tmp_path / "tokens", tasks=3)
    before = file_streams(tmp_path / "tokens")
    # task 1 was killed while writing its file: no record, no file, a killed writer's temporary left behind
    (tmp_path / "tokens" / "part-00001.json").unlink()
    (tmp_path / "tokens" / "logs" / "completions" / "00001").unlink()  # datatrove's own marker goes with it
    killed_writer(tmp_path / "tokens" / "part-00001-00000.npy")
    with pytest.raises(PalomaError, match=r"incomplete \(2 of 3 tasks done\): rerun the same"):
        open_tokens(tokens_config(tmp_path / "tokens"))
    done = tmp_path / "tokens" / "part-00000-00000.npy"
    stamp = done.stat().st_mtime_ns
    tiny_tokens(corpus, tokenizer_dir, tmp_path / "tokens", tasks=3)
    assert file_streams(tmp_path / "tokens") == before
    assert done.stat().st_mtime_ns == stamp  # the finished tasks were not redone
    assert not list((tmp_path / "tokens").glob(".*.tmp"))


def test_another_plan_in_the_folder_is_refused_and_overwrite_starts_over(docs, tokenizer_dir, tmp_path) -> None:
    corpus = write_corpus_files(tmp_path / "corpus", docs[:60], files=2)
    tiny_tokens(corpus, tokenizer_dir, tmp_path / "tokens", tasks=2)
    with pytest.raises(PalomaError, match=r"another plan \(tasks differs\).*--overwrite to start over"):
        tiny_tokens(corpus, tokenizer_dir, tmp_path / "tokens", tasks=1)
    result = tiny_tokens(corpus, tokenizer_dir, tmp_path / "tokens", tasks=1, overwrite=True)
    assert result.tasks == 1 and len(file_streams(tmp_path / "tokens")) == 1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine\n")
    with pytest.raises(PalomaError, match="is not a tokenize folder"):
        tiny_tokens(corpus, tokenizer_dir, tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").is_file()  # --overwrite never deletes a folder it did not write


def test_parquet_and_bad_records_name_the_file_and_line(tokenizer_dir, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["first document", "second document"]}), tmp_path / "part.parquet")
    parquet = tmp_path / "part.parquet"
    result = tiny_tokens(parquet, tokenizer_dir, tmp_path / "t1", overrides=["data.text_field=content"])
    assert result.documents_read == 2
    bad = tmp_path / "bad" / "docs.jsonl"
    bad.parent.mkdir()
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    with pytest.raises(PalomaError, match=r"docs\.jsonl:2: field 'text' is missing or not a string"):
        tiny_tokens(bad, tokenizer_dir, tmp_path / "t2")
    with pytest.raises(PalomaError, match="no such file or folder"):
        tiny_tokens(tmp_path / "nope.jsonl", tokenizer_dir, tmp_path / "t3")
    with pytest.raises(PalomaError, match=r"--tasks 3: the corpus has 1 file"):
        tiny_tokens(bad, tokenizer_dir, tmp_path / "t4", tasks=3)
    assert not any((tmp_path / name).exists() for name in ("t3", "t4"))  # refused before anything was written


def test_training_data_problems_are_one_line_instructions(tmp_path: Path) -> None:
    with pytest.raises(PalomaError, match=r"data\.tokens is not set\): run `paloma baselines tokenize --config tiny"):
        open_tokens(load_config("tiny"))
    with pytest.raises(PalomaError, match=r"no such folder or file; run `paloma baselines tokenize"):
        open_tokens(tokens_config(tmp_path / "missing"))
    (tmp_path / "odd.npy").write_bytes(b"abc")  # three bytes: not a whole number of uint16 ids
    with pytest.raises(PalomaError, match=r"odd\.npy: 3 bytes is not a whole number of uint16"):
        len(open_tokens(tokens_config(tmp_path / "odd.npy")))


@pytest.mark.parametrize("batch", [8, 12, 2112])
def test_each_steps_global_batch_is_the_same_for_any_number_of_processes(batch: int) -> None:
    num = 100_000
    for world in (2, 4) if batch != 2112 else (2, 4, 64):
        single, split = GlobalOrder(num, 6198, batch), GlobalOrder(num, 6198, batch, world)
        for step in (1, 2, 7, 40):
            shares = [split.step_instances(step, rank) for rank in range(world)]
            # rank r takes global positions r, r+W, ...: interleaving the shares gives the global batch back
            assert [shares[i % world][i // world] for i in range(batch)] == single.global_batch(step)


def test_one_epoch_visits_instances_once_and_the_next_is_reshuffled() -> None:
    order = GlobalOrder(num_instances=96, seed=1, batch_size=8)
    epoch0 = [i for s in range(1, 13) for i in order.step_instances(s)]
    epoch1 = [i for s in range(13, 25) for i in order.step_instances(s)]
    assert sorted(epoch0) == sorted(epoch1) == list(range(96))
    assert epoch0 != epoch1 and epoch0 != list(range(96))
    assert GlobalOrder(96, 1, 8).step_instances(5) == order.step_instances(5)  # a pure function of the seed
    assert GlobalOrder(96, 2, 8).step_instances(5) != order.step_instances(5)
    with pytest.raises(PalomaError, match="fewer than one global batch"):
        GlobalOrder(7, 1, 8)


def test_token_files_are_written_with_the_umask_permissions(docs, tokenizer_dir, tmp_path: Path) -> None:
    corpus = write_corpus_files(tmp_path / "corpus", docs[:40], files=2)
    old = os.umask(0o022)
    try:
        tiny_tokens(corpus, tokenizer_dir, tmp_path / "tokens", tasks=2)
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path): p.stat().st_mode & 0o777 for p in (tmp_path / "tokens").rglob("*")}
    assert modes and all(mode == (0o755 if (tmp_path / p).is_dir() else 0o644) for p, mode in modes.items()), modes


# ---- corpora and token folders in buckets (issue 22, item 1), and what a tokenize folder holds -------------
@pytest.fixture(scope="module")
def s3_endpoint():
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from tests.buckets import s3_server

    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    from tests.buckets import s3_bucket

    return s3_bucket(s3_endpoint, monkeypatch)


def test_a_corpus_in_a_bucket_tokenizes_into_a_bucket_as_it_does_locally(docs, tokenizer_dir, s3, tmp_path) -> None:
    from tests.buckets import BUCKET

    corpus = write_corpus_files(tmp_path / "corpus", docs, files=3)
    local = tiny_tokens(corpus, tokenizer_dir, tmp_path / "tokens", tasks=3)
    for path in corpus.iterdir():
        s3.put(str(path), f"{BUCKET}/corpus/{path.name}")
    remote = tiny_tokens(f"s3://{BUCKET}/corpus", tokenizer_dir, f"s3://{BUCKET}/tokens", tasks=3)
    assert (remote.tokens, remote.documents_read, remote.files) == (local.tokens, local.documents_read, local.files)
    s3.invalidate_cache()
    for path in sorted((tmp_path / "tokens").glob("part-*.npy")):
        assert s3.cat(f"{BUCKET}/tokens/{path.name}") == path.read_bytes()
    # a killed task in the bucket: no record, a dead writer's temporary; the rerun redoes that task only
    from paloma.io import _host_tag

    done_record = s3.cat(f"{BUCKET}/tokens/part-00000.json")
    s3.rm(f"{BUCKET}/tokens/part-00001.json")
    s3.rm(f"{BUCKET}/tokens/logs/completions/00001")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = f"{BUCKET}/tokens/.part-00001-00000.npy.{_host_tag()}-{dead.stdout.strip()}.abcd1234.tmp"
    s3.pipe(leftover, b"\0\1")
    again = tiny_tokens(f"s3://{BUCKET}/corpus", tokenizer_dir, f"s3://{BUCKET}/tokens", tasks=3)
    s3.invalidate_cache()
    assert again.tokens == local.tokens and not s3.exists(leftover)
    assert s3.cat(f"{BUCKET}/tokens/part-00000.json") == done_record  # task 0 was not redone
    redone = s3.cat(f"{BUCKET}/tokens/part-00001-00000.npy")
    assert redone == (tmp_path / "tokens" / "part-00001-00000.npy").read_bytes()


def test_a_file_list_names_the_corpus_as_dolma_and_redpajama_publish_it(docs, tokenizer_dir, tmp_path) -> None:
    corpus = write_corpus_files(tmp_path / "files", docs, files=2)
    listing = tmp_path / "files" / "urls.txt"
    listing.write_text(f"# two files\npart-0.jsonl\n{(corpus / 'part-1.jsonl').as_uri()}\n")
    listed = tiny_tokens(listing, tokenizer_dir, tmp_path / "from-list", tasks=2)
    direct = tiny_tokens(corpus, tokenizer_dir, tmp_path / "direct", tasks=2)
    assert listed.tokens == direct.tokens
    assert file_streams(tmp_path / "from-list") == file_streams(tmp_path / "direct")


def test_a_tokenize_folder_holds_only_the_documented_files(docs, tokenizer_dir, tmp_path) -> None:
    """It left an undocumented `inputs-infer.txt` (issue 22); every name is now in docs/baselines.md."""
    import fnmatch

    tiny_tokens(write_corpus_files(tmp_path / "corpus", docs[:40], files=2), tokenizer_dir, tmp_path / "t", tasks=2)
    documented = ["tokens.json", "part-*.npy", "part-*.json", "corpus-files-*.txt", "logs"]
    docs_text = (Path(__file__).resolve().parents[1] / "docs" / "baselines.md").read_text(encoding="utf-8")
    assert all(f"`{pattern}" in docs_text or f"`<output>/{pattern}" in docs_text for pattern in documented)
    names = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert all(any(fnmatch.fnmatch(n, pattern) for pattern in documented) for n in names), names


# ---- every recipe's corpus check on a local stand-in (issue 22, item 3) ----------------------------------
def _write_gz(path: Path, texts: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress("".join(json.dumps({"text": t}) + "\n" for t in texts).encode()))


def _write_hub_stand_in(root: Path, docs: list[str]) -> dict[str, list[str]]:
    """The files each recipe must find in its stand-in (and some it must not)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    hub = root / "datasets"
    json_files = {  # each folder's train files and the files next to them that a recipe must not read
        "allenai/c4/en": ["c4-train.00000-of-01024", "c4-train.00001-of-01024", "c4-validation.00000-of-00008"],
        "allenai/c4/multilingual": [
            "c4-en.tfrecord-00000-of-11264", "c4-en-validation.tfrecord-00000-of-00128", "c4-de.tfrecord-00000-of-02048"
        ],
    }  # fmt: skip
    for folder, names in json_files.items():
        for name in names:
            _write_gz(hub / folder / f"{name}.json.gz", docs[:20])
    falcon = hub / "tiiuae/falcon-refinedweb/data"
    falcon.mkdir(parents=True)
    pq.write_table(pa.table({"content": docs[:20]}), falcon / "train-00000-of-05534.parquet")
    dolma = [f"https://olmo-data.org/dolma-v1_5/cc_en_head/cc_en_head-{k:04d}.json.gz" for k in range(3)]
    (hub / "allenai/dolma/urls").mkdir(parents=True)
    (hub / "allenai/dolma/urls/v1_5.txt").write_text("".join(f"{u}\n" for u in dolma))
    base = "https://data.together.xyz/redpajama-data-1T/v1.0.0"
    names = {"arxiv": "arxiv/arxiv_0.jsonl", "book": "book/book.jsonl", "c4": "c4/c4-train.00000-of-01024.jsonl",
             "common_crawl": "common_crawl/2023-06/en_head_0000.json.gz.dedup.classifier.jsonl.zst",
             "github": "github/filtered_0.sampled.jsonl", "stackexchange": "stackexchange/stackexchange.jsonl",
             "wikipedia": "wikipedia/wiki.jsonl"}  # fmt: skip
    (hub / "togethercomputer/RedPajama-Data-1T/urls").mkdir(parents=True)
    for subset, name in names.items():
        (hub / f"togethercomputer/RedPajama-Data-1T/urls/{subset}.txt").write_text(f"{base}/{name}\n")
    pile = root / "pile" / "train"
    write_corpus(pile / "00.jsonl", docs[:20])
    return {
        "c4": [f"hf://datasets/allenai/c4/en/c4-train.0000{k}-of-01024.json.gz" for k in range(2)],
        "mc4": ["hf://datasets/allenai/c4/multilingual/c4-en.tfrecord-00000-of-11264.json.gz"],
        "falcon-refinedweb": ["hf://datasets/tiiuae/falcon-refinedweb/data/train-00000-of-05534.parquet"],
        "dolma": dolma,
        "redpajama": [f"{base}/{name}" for subset, name in names.items() if subset != "github"],
        "pile": [str((pile / "00.jsonl").resolve())],
    }


@pytest.fixture
def hub_stand_in(docs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import fsspec
    from fsspec.implementations.dirfs import DirFileSystem
    from fsspec.implementations.local import LocalFileSystem

    root = tmp_path / "hub"
    expected = _write_hub_stand_in(root, docs)

    class HubStandIn(DirFileSystem):
        protocol = "hf"
        cachable = False

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(path=str(root), fs=LocalFileSystem())

    original = fsspec.get_filesystem_class("hf")
    fsspec.register_implementation("hf", HubStandIn, clobber=True)
    try:
        yield root, expected
    finally:
        fsspec.register_implementation("hf", original, clobber=True)


@pytest.mark.parametrize("recipe", ["c4", "mc4", "falcon-refinedweb", "redpajama", "pile", "dolma"])
def test_each_recipe_passes_its_corpus_check_on_a_local_stand_in(recipe, hub_stand_in, tokenizer_dir, tmp_path):
    """Dolma and RedPajama are loading-script datasets that `datasets` >= 4 refuses: their recipes read the
    URL lists the scripts read; C4, mC4 and RefinedWeb read their files from the hub repository directly."""
    from paloma_baselines.tokens import make_plan

    root, expected = hub_stand_in
    overrides = ["model.vocab_size=512", "model.eos_token_id=0", f"data.tokenizer={tokenizer_dir}"]
    if recipe == "pile":  # not distributed any more: the docs' two commands make the local copy named here
        overrides.append(f"data.corpus={root / 'pile' / 'train'}")
    plan = make_plan(load_config(recipe, overrides), tmp_path / "tokens", tasks=1, limit=None)
    assert [str(f) for f in plan.files] == expected[recipe]
    assert plan.record["corpus"]["files"][0]["path"] == expected[recipe][0]


def test_a_hub_recipe_tokenizes_from_its_stand_in(hub_stand_in, docs, tokenizer_dir, tmp_path) -> None:
    from paloma_baselines.tokens import tokenize

    overrides = ["model.vocab_size=512", "model.eos_token_id=0", f"data.tokenizer={tokenizer_dir}"]
    result = tokenize("c4", tmp_path / "tokens", overrides=overrides, tasks=2, quiet=True)
    assert result.documents_read == 40 and result.tokens > 0
