"""
webtext.py through prepare.py web/fineweb_edu, offline: the very code path that streams the hub, on a local parquet
fixture (load_dataset("parquet", data_files=..., streaming=True)).

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_webtext.py -v
"""
import json

import numpy as np
import pytest

import webtext
from conftest import cli
from tokenizer import gpt2_encoding

WORDS = "the of a river stone light learns small model depth round again under over".split()


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """600 documents of 5-80 words, ids doc-0..doc-599, as one parquet file; and their ids and token lists."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, rng.integers(5, 80))) for _ in range(600)]
    ids = [f"doc-{i}" for i in range(600)]
    path = tmp_path_factory.mktemp("parquet") / "shard.parquet"
    pq.write_table(pa.table({"id": ids, "text": texts, "n": list(range(600))}), path)
    enc = gpt2_encoding()
    return str(path), ids, [enc.encode_ordinary(t) + [enc.eot_token] for t in texts]


def prepare(shard, root, *args):
    return cli("prepare.py", "web", "--hf=parquet", f"--data_files={shard[0]}", "--id_column=id", f"--data_dir={root}",
               *args)


def expected(shard, max_tokens):
    """Per split, the tokens of the documents up to the one that reaches max_tokens, in stream order."""
    out, total = {s: [] for s in webtext.SPLITS}, 0
    for key, tokens in zip(shard[1], shard[2]):
        out[webtext.split_of(key)] += tokens
        total += len(tokens)
        if total >= max_tokens:
            break
    return out, total


def read(root, name="web"):
    d = root / name
    return {s: np.fromfile(d / f"{s}.bin", dtype=np.uint16).tolist() for s in webtext.SPLITS}, \
        json.loads((d / "meta.json").read_text())


def test_counts_document_split_and_the_max_tokens_stop(shard, tmp_path):
    proc = prepare(shard, tmp_path, "--max_tokens=9000", "--threads=2")
    assert proc.returncode == 0, proc.stderr
    got, meta = read(tmp_path)
    want, total = expected(shard, 9000)
    assert got == want  # every document whole, in its own split, in stream order
    assert 9000 <= total < 9000 + max(map(len, shard[2])) and meta["train_tokens"] + meta["val_tokens"] + \
        meta["test_tokens"] == total
    assert meta["dataset"] == "parquet" and meta["text_column"] == "text" and "sha256" in meta["split_rule"]
    assert "documents" in proc.stderr and "tokens/s" in proc.stderr and "ETA" in proc.stderr  # the progress line


def test_resume_after_a_kill_and_growing_give_the_one_shot_bytes(shard, tmp_path, monkeypatch):
    source = dict(hf="parquet", config=None, data_files=shard[0], text_column="text", id_column="id")
    monkeypatch.setattr(webtext, "BATCH", 50)
    webtext.build(tmp_path / "once", source, 12000)

    def killed():
        for i, doc in enumerate(webtext.open_stream(source)):
            if i == 230:
                raise KeyboardInterrupt  # as Ctrl-C between two batches' writes
            yield doc

    class Stream:  # what build needs of a stream: iteration (no skip: this run starts at 0)
        __iter__ = lambda self: killed()

    with pytest.raises(KeyboardInterrupt):
        webtext.build(tmp_path / "again", source, 12000, stream=Stream())
    d = tmp_path / "again"
    assert not (d / "meta.json").exists() and not (d / "train.bin").exists() and (d / "train.bin.part").exists()
    assert json.loads((d / "progress.json").read_text())["docs"] == 200  # four whole batches were saved
    webtext.build(d, source, 12000)
    for s in webtext.SPLITS:
        assert (d / f"{s}.bin").read_bytes() == (tmp_path / "once" / f"{s}.bin").read_bytes()
    webtext.build(tmp_path / "grown", source, 5000)
    webtext.build(tmp_path / "grown", source, 12000)  # asked for more of the same source: it grows in place
    for s in webtext.SPLITS:
        assert (tmp_path / "grown" / f"{s}.bin").read_bytes() == (tmp_path / "once" / f"{s}.bin").read_bytes()


def test_bad_input_is_one_line_and_overwrites_nothing(shard, tmp_path):
    assert prepare(shard, tmp_path, "--max_tokens=3000").returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "web").iterdir()}
    other = cli("prepare.py", "web", "--hf=parquet", f"--data_files={shard[0]}", "--text_column=id",
                f"--data_dir={tmp_path}", "--max_tokens=3000")
    assert other.returncode != 0 and "holds parquet" in other.stderr and "nothing was overwritten" in other.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "web").iterdir()} == before
    for args, message in ((["--max_tokens=0"], "bad --max_tokens=0"), ([], "needs --max_tokens=N"),
                          (["--max_tokens=1e4", "--text_column=body", "--name=w2"], "has no column 'body'; its "
                                                                                    "columns: id, text, n")):
        proc = prepare(shard, tmp_path, *args)
        assert proc.returncode != 0 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
            proc.stderr
    assert not (tmp_path / "w2").exists()


def test_offline_hub_dataset_is_one_line_and_writes_nothing(tmp_path):
    proc = cli("prepare.py", "fineweb_edu", "--max_tokens=1e6", f"--data_dir={tmp_path}")
    assert proc.returncode != 0 and "'HuggingFaceFW/fineweb-edu'" in proc.stderr and "needs the network" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())
