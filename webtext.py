"""
Web-scale text for GPU runs (prepare.py fineweb_edu, prepare.py web --hf=NAME): streamed from a Hugging Face
dataset, GPT-2 BPE tokenized on several threads, split per *document* and written as uint16 train/val/test.bin.

    python prepare.py fineweb_edu --max_tokens=2e9                       # FineWeb-Edu's sample-10BT, 2B tokens
    python prepare.py web --hf=NAME[:CONFIG] --text_column=text --max_tokens=1e8
    python prepare.py web --hf=parquet --data_files='shards/*.parquet'   # local files, the same code path

A document's split is decided by a hash of its id (else its text): val and test never share a document with train,
whatever the order of the stream or where it stopped. The stream stops after the document that reaches
--max_tokens. Progress is checkpointed after every batch of documents in DIR/NAME/progress.json beside *.bin.part
files; an interrupted run continues where that file says (the parts are cut back to it), and only a finished one
renames the parts and writes meta.json, so nothing half-written looks complete. A finished dataset grows in place
when asked for more tokens of the same source.
"""
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from tokenizer import gpt2_encoding

SOURCES = {"fineweb_edu": dict(hf="HuggingFaceFW/fineweb-edu", config="sample-10BT", text_column="text",
                               id_column="id", data_files=None)}
SPLITS = ("train", "val", "test")
HELD_OUT = 0.005  # of the documents (by hash) each for val and test
BATCH = 1024  # documents tokenized together; also how often progress is saved


def split_of(key: str) -> str:
    """train, val or test for a document: the first 8 bytes of sha256(key) as a fraction of 2^64."""
    u = int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big") / 2 ** 64
    return "val" if u < HELD_OUT else "test" if u < 2 * HELD_OUT else "train"


def open_stream(source: dict):
    """The dataset's train split as a stream of documents; one line, and nothing written, if it cannot be read."""
    import datasets
    name, config, files = source["hf"], source["config"], source["data_files"]
    what = f"Hugging Face dataset {name!r}" + (f" (config {config!r})" if config else "")
    try:
        ds = datasets.load_dataset(name, config, data_files=files, split="train", streaming=True)
        first = next(iter(ds))
    except StopIteration:
        raise SystemExit(f"prepare.py: {what} has no documents")
    except FileNotFoundError as e:  # local builders: no such files; the hub: no such dataset
        raise SystemExit(f"prepare.py: {what} not found ({str(e).splitlines()[0][:200]}); check the name "
                         "(and --data_files)")
    except Exception as e:  # offline: ConnectionError, or the hub's offline-mode error
        raise SystemExit(f"prepare.py: {what} could not be read ({type(e).__name__}); it is streamed from the "
                         "Hugging Face hub and needs the network (nothing was written)")
    col = source["text_column"]
    if col not in first:
        raise SystemExit(f"prepare.py: {what} has no column {col!r}; its columns: {', '.join(first)}; "
                         "choose one with --text_column")
    return ds


def build(out_dir, source: dict, max_tokens: int, threads: int | None = None, stamp=None, stream=None):
    """Stream, tokenize and write out_dir/{train,val,test}.bin + meta.json (see the module docstring)."""
    out_dir, threads = Path(out_dir), threads or os.cpu_count()
    progress_path, meta_path = out_dir / "progress.json", out_dir / "meta.json"
    state = json.loads(progress_path.read_text()) if progress_path.exists() else None
    if state is None and meta_path.exists():
        other = json.loads(meta_path.read_text()).get("name", "another dataset")
        raise SystemExit(f"prepare.py: {out_dir} holds {other!r}, prepared otherwise; choose another --name or "
                         "delete it (nothing was overwritten)")
    if state and state["source"] != source:
        raise SystemExit(f"prepare.py: {out_dir} holds {describe(state['source'])}, not {describe(source)}; "
                         "choose another --name or delete it (nothing was overwritten)")
    if state and state["done"] and state["tokens"] >= max_tokens:
        print(f"{out_dir} is up to date: {state['tokens']:,} tokens >= --max_tokens={max_tokens:,} (delete it to "
              "rebuild)")
        return json.loads(meta_path.read_text())
    enc = gpt2_encoding()
    ds = stream if stream is not None else open_stream(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)  # from here until the end, the folder does not look complete
    state = state or {"source": source, "docs": 0, "tokens": 0, "done": False,
                      "splits": {s: {"docs": 0, "tokens": 0} for s in SPLITS}}
    parts = {s: out_dir / f"{s}.bin.part" for s in SPLITS}
    for s in SPLITS:  # a finished dataset grows from its .bin files; an interrupted one is cut back to its progress
        if state["done"]:
            os.replace(out_dir / f"{s}.bin", parts[s])
        with open(parts[s], "ab") as f:
            f.truncate(2 * state["splits"][s]["tokens"])
    state["done"] = False
    files = {s: open(p, "ab") for s, p in parts.items()}
    t0, start_tokens, batch = time.time(), state["tokens"], []
    docs = iter(ds.skip(state["docs"]) if state["docs"] else ds)

    def flush() -> bool:
        """Tokenize the batch and write its documents, each whole, up to the one that reaches max_tokens (the
        rest of the batch is dropped, unwritten and uncounted, so a resume skips exactly what was written)."""
        ids = enc.encode_ordinary_batch([text for _, text in batch], num_threads=threads)
        for (key, _), tokens in zip(batch, ids):
            s = split_of(key)
            files[s].write(np.array(tokens + [enc.eot_token], dtype=np.uint16).tobytes())  # max id 50256 fits
            for counts in (state["splits"][s], state):
                counts["docs"] += 1
                counts["tokens"] += len(tokens) + 1
            if state["tokens"] >= max_tokens:
                break
        batch.clear()
        for f in files.values():
            f.flush()
        write_json(progress_path, state)  # after the data it describes: a crash in between only loses a batch
        rate = (state["tokens"] - start_tokens) / max(time.time() - t0, 1e-9)
        eta = (max_tokens - state["tokens"]) / rate if rate else float("inf")
        print(f"\r{state['docs']:,} documents, {state['tokens']:,} / {max_tokens:,} tokens, {rate:,.0f} tokens/s, "
              f"ETA {max(eta, 0) / 60:.1f} min   ", end="", file=sys.stderr, flush=True)
        return state["tokens"] >= max_tokens

    try:
        for doc in docs:
            text = doc[source["text_column"]]
            batch.append((str(doc[source["id_column"]]) if source["id_column"] in doc else text, text))
            if len(batch) == BATCH and flush():
                break
        else:
            if batch:
                flush()
    finally:
        for f in files.values():
            f.close()
    print(file=sys.stderr)
    if state["tokens"] < max_tokens:
        print(f"the dataset ended at {state['tokens']:,} tokens, before --max_tokens={max_tokens:,}")
    for s in SPLITS:
        os.replace(parts[s], out_dir / f"{s}.bin")
    state["done"] = True
    write_json(progress_path, state)
    meta = {"name": out_dir.name, "tokenizer": "gpt2", "vocab_size": enc.n_vocab, "dataset": source["hf"],
            "config": source["config"], "data_files": source["data_files"], "text_column": source["text_column"],
            "revision": revision(source), "max_tokens": max_tokens, "documents": state["docs"],
            "split_rule": f"sha256 of each document's {source['id_column'] or 'text'}: its first 8 bytes / 2^64 "
                          f"< {HELD_OUT} val, < {2 * HELD_OUT} test, else train; <|endoftext|> after each document",
            "stamp": stamp} | {f"{s}_{k}": state["splits"][s][k] for s in SPLITS for k in ("tokens", "docs")}
    write_json(meta_path, meta)
    print(f"{out_dir}: " + ", ".join(f"{s} {meta[s + '_tokens']:,} tokens ({meta[s + '_docs']:,} documents)"
                                     for s in SPLITS) + f" in {time.time() - t0:.0f}s")
    return meta


def describe(source: dict) -> str:
    return f"{source['hf']}" + (f":{source['config']}" if source["config"] else "") + (
        f" ({source['data_files']})" if source["data_files"] else "") + f", column {source['text_column']!r}"


def revision(source: dict) -> str | None:
    """The hub commit of the dataset, when the hub can say (never for local files)."""
    if source["data_files"] or os.environ.get("HF_HUB_OFFLINE"):
        return None
    try:
        from huggingface_hub import HfApi
        return HfApi().dataset_info(source["hf"]).sha
    except Exception:  # revision is a record, not a requirement
        return None


def write_json(path: Path, obj) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
