"""
grammar.py and prepare.py grammar*: a synthetic language whose exact floor is known, and train.py on it.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_grammar.py -v
"""
import json
import os
from functools import reduce

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN, cli, read_log
from grammar import S3, Grammar, GrammarConfig, write_dataset

TINY = GrammarConfig(vocab=40, nonterminals=2, rules=6, depth_max=3, depth_mean=1.8, seed=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """data_dir/tiny_grammar: 200 train chunks, 40 each of val and test, chunks of 17 tokens."""
    root = tmp_path_factory.mktemp("grammar")
    (root / "tiny_grammar").mkdir()
    meta = write_dataset(root / "tiny_grammar", TINY, train_tokens=200 * 17, eval_tokens=40 * 17, chunk=17)
    return root, meta


def split(root, name, dtype=np.uint16, chunk=17):
    return np.fromfile(root / "tiny_grammar" / f"{name}.bin", dtype=dtype).reshape(-1, chunk)


def test_the_true_automaton_reaches_the_floor_exactly(tiny):
    """A predictor that parses each chunk's prefix (Grammar.predict, not the generator's bookkeeping) scores exactly
    the floor meta.json records; the per-token -ln p file agrees token by token."""
    root, meta = tiny
    g = Grammar(TINY)
    for s in ("val", "test"):
        tok = split(root, s)
        p = np.stack([g.predict(c) for c in tok])  # (chunks, 16, vocab)
        assert np.allclose(p.sum(-1), 1.0)
        nll = -np.log(np.take_along_axis(p, tok[:, 1:, None].astype(int), 2)[..., 0])
        assert abs(nll.mean() - meta["floor"][s]) < 1e-12
        assert np.allclose(nll, split(root, f"{s}_nll", np.float32)[:, 1:], atol=1e-6)


def test_unigram_and_bigram_predictors_stay_above_the_floor(tiny):
    root, meta = tiny
    train, val = split(root, "train"), split(root, "val")
    V = TINY.vocab
    uni = np.bincount(train[:, 1:].ravel(), minlength=V) + 0.5
    uni_loss = -np.log(uni[val[:, 1:]] / uni.sum()).mean()
    bi = np.full((V, V), 0.5)
    np.add.at(bi, (train[:, :-1].ravel(), train[:, 1:].ravel()), 1)
    bi /= bi.sum(1, keepdims=True)
    bi_loss = -np.log(bi[val[:, :-1], val[:, 1:]]).mean()
    floor = meta["floor"]["val"]
    assert uni_loss > bi_loss > floor + 0.1, (uni_loss, bi_loss, floor)


def test_same_seed_same_bytes_and_splits_never_overlap(tiny, tmp_path):
    root, _ = tiny
    (tmp_path / "tiny_grammar").mkdir()
    write_dataset(tmp_path / "tiny_grammar", TINY, train_tokens=200 * 17, eval_tokens=40 * 17, chunk=17)
    for name in ("train", "val", "test", "val_nll", "test_depth"):
        assert (root / "tiny_grammar" / f"{name}.bin").read_bytes() == \
            (tmp_path / "tiny_grammar" / f"{name}.bin").read_bytes()
    rows = {s: {c.tobytes() for c in split(root, s)} for s in ("train", "val", "test")}
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"] and not rows["val"] & rows["test"]
    other = Grammar(GrammarConfig(**(vars(TINY) | {"seed": 4}))).chunks(40, 17, "4-val-0")[0]
    assert not np.array_equal(other, split(root, "val"))


def test_depths_and_the_tree(tiny):
    """Depths stay within depth_max and '.' sits at depth 0; a derivation tree's leaves are its sentence."""
    root, meta = tiny
    tok, dep = split(root, "val"), split(root, "val_depth", np.uint8)
    assert dep.max() == TINY.depth_max and (dep[tok == 0] == 0).all() and (dep[tok != 0] > 0).all()
    g = Grammar(TINY)
    tree = g.tree("t", max_tokens=16)

    def leaves(node):
        label, kids = node
        return [label] if not kids else [x for k in kids for x in leaves(k)]

    words = leaves(tree)
    assert words and all(w in g.names for w in words)
    assert 1 < meta["grammar"]["expected_depth"] < TINY.depth_max


def test_matching_slots_repeat_the_opening_word_and_the_floor_stays_exact():
    """agree=1: in every derivation tree a word that follows a child subtree is the word its node opened with (read
    off the tree, not the generator); the true automaton still scores each token exactly as generated; and agree=0
    leaves the text of the table it shares byte for byte (the grammar_shallow/deep data stay valid)."""
    g = Grammar(GrammarConfig(**(vars(TINY) | {"agree": 1.0})))
    matched = 0

    def check(node):
        nonlocal matched
        kids = node[1]
        for before, kid in zip(kids, kids[1:]):
            if before[1] and not kid[1]:  # a word right after a subtree: the node's first word opened it
                assert kid[0] == kids[0][0], (node, kid)
                matched += 1
        for k in kids:
            check(k)

    for seed in range(20):
        check(g.tree(f"m{seed}", max_tokens=40))
    assert matched > 10
    tok, nll, _ = g.chunks(60, 17, "m")
    p = np.stack([g.predict(c) for c in tok])
    assert np.allclose(-np.log(np.take_along_axis(p, tok[:, 1:, None].astype(int), 2)[..., 0]), nll[:, 1:],
                       rtol=0, atol=1e-12)
    assert (nll[:, 1:] == 0).mean() > (Grammar(TINY).chunks(60, 17, "m")[1][:, 1:] == 0).mean()
    assert Grammar(GrammarConfig(**(vars(TINY) | {"agree": 0.0}))).chunks(5, 17, "m")[0].tobytes() == \
        Grammar(TINY).chunks(5, 17, "m")[0].tobytes()


def test_tracking_slots_name_the_path_product_and_the_floor_stays_exact():
    """track=1: in every derivation tree a word that follows a child subtree names the product in S3 of the elements
    of the announcers on the path from the root to its node, composed here from the permutations themselves (not
    the generator's table of products); the true automaton scores each token exactly as generated; the order of the
    path matters (some product differs from its reverse); track=0 leaves the text byte for byte."""
    g = Grammar(GrammarConfig(**(vars(TINY) | {"track": 1.0})))
    word = {S3[e]: g.names[w] for e, w in enumerate(g.state_words)}
    tracked, orders = 0, set()

    def check(node, path):
        nonlocal tracked
        kids = node[1]
        if node[0] != "S":
            announcer = g.names.index(node[0].split(": ")[1])
            path = path + [S3[g.element[announcer]]]
        product = reduce(lambda a, b: tuple(a[i] for i in b), path, (0, 1, 2))
        orders.add(product != reduce(lambda a, b: tuple(a[i] for i in b), path[::-1], (0, 1, 2)))
        for before, kid in zip(kids, kids[1:]):
            if before[1] and not kid[1]:  # a word right after a subtree
                assert kid[0] == word[product], (node, kid)
                tracked += 1
        for k in kids:
            if k[1]:
                check(k, path)

    for seed in range(20):
        check(g.tree(f"t{seed}", max_tokens=40), [])
    assert tracked > 10 and True in orders
    tok, nll, _ = g.chunks(60, 17, "t")
    p = np.stack([g.predict(c) for c in tok])
    assert np.allclose(-np.log(np.take_along_axis(p, tok[:, 1:, None].astype(int), 2)[..., 0]), nll[:, 1:],
                       rtol=0, atol=1e-12)
    assert Grammar(GrammarConfig(**(vars(TINY) | {"track": 0.0}))).chunks(5, 17, "t")[0].tobytes() == \
        Grammar(TINY).chunks(5, 17, "t")[0].tobytes()


@pytest.mark.parametrize("args, message", [
    (["--depth_max=0"], "depth_max=0: a sentence needs depth >= 1"),
    (["--branching=0.5"], "branching=0.5: a recursive rule has 1 or 2 children"),
    (["--vocab=20"], "vocab=20 is too small for the rules"),
    (["--depth_mean=9"], "depth_mean=9.0 cannot be reached with depth_max=4"),
    (["--train_tokens=100"], "--train_tokens=100 is less than one chunk (129 tokens)"),
    (["--entropy=x"], "bad --entropy=x; give a number"),
    (["--agree=1.5"], "agree=1.5 is a probability: it must be in [0, 1]"),
    (["--track=-1"], "track=-1.0 is a probability: it must be in [0, 1]"),
    (["--track=1", "--nonterminals=1", "--vocab=10"], "track=1.0 names the 6 elements of S3 with words: need vocab"),
])
def test_impossible_knobs_are_one_line_before_any_file(tmp_path, args, message):
    proc = cli("prepare.py", "grammar", f"--data_dir={tmp_path}", *args)
    assert proc.returncode != 0 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


def run(root, out, *args):
    return cli("train.py", f"--data_dir={root}", "--dataset=tiny_grammar", f"--out_dir={out}", *TINY_TRAIN, *args,
               timeout=600)


def test_train_logs_the_floor_of_its_eval_windows_and_never_repeats_a_chunk(tiny, tmp_path):
    """train.py on chunked data: the floor of exactly its eval windows is in the start line (it equals the
    nll files over those windows' targets), and a run that would read more chunks than train.bin holds stops
    with one line before writing anything; one that reads all of them runs."""
    root, _ = tiny
    # TINY_TRAIN: batch 4, block 16 = chunk - 1: 200 chunks are 50 iterations
    ok = run(root, tmp_path / "ok", "--flop_budget=0", "--max_iters=50")
    assert ok.returncode == 0, ok.stderr[-2000:]
    start = read_log(tmp_path / "ok")[0]
    for s, seed in (("val", 20250211), ("test", 20250212)):  # train.py's windows: batch 4, eval_iters 2
        gen, nll = torch.Generator().manual_seed(seed), split(root, f"{s}_nll", np.float32).ravel()
        starts = [i for _ in range(2) for i in (torch.randint(40, (4,), generator=gen) * 17).tolist()]
        assert start["floor"][s] == pytest.approx(np.mean([nll[i + 1:i + 17] for i in starts]), rel=1e-6)
    big = run(root, tmp_path / "big", "--flop_budget=0", "--max_iters=51")
    assert big.returncode != 0 and "reads 204 training chunks but" in big.stderr and "tokens would repeat" in big.stderr
    assert len(big.stderr.strip().splitlines()) == 1 and not os.path.exists(tmp_path / "big")
    wide = run(root, tmp_path / "wide", "--block_size=32", "--dry_run=True")
    assert wide.returncode != 0 and "comes in chunks of 17" in wide.stderr


def test_meta_records_grammar_floors_and_seed_rule(tiny):
    _, meta = tiny
    assert meta["tokenizer"] == "words" and len(meta["words"]) == TINY.vocab and meta["chunk"] == 17
    assert meta["grammar"]["config"] == vars(TINY) and len(meta["grammar"]["rules"]) == 12
    assert set(meta["floor"]) == {"train", "val", "test"} and "seed_rule" in meta
    assert json.loads(json.dumps(meta)) == meta


def test_diagnose_and_depth_at_inference_read_the_grammar_by_nesting_depth(tiny, tmp_path):
    """diagnose.py on a grammar model draws train.py's chunk-start windows and splits the lens loss by the nesting
    depth of the predicted token: shares sum to 1, the floor of its 'all' row is the true -ln p of exactly those
    targets, and the last application's excess is the model's loss less it. bench_inference.py --depth reports
    loss - floor on evenly spaced chunk starts, and --exit the rounds per nesting depth."""
    root, _ = tiny
    out = tmp_path / "rins"
    assert run(root, out, "--signature=A^rB", "--r=2", "--flop_budget=0", "--max_iters=20").returncode == 0
    d = cli("diagnose.py", f"--out_dir={out}", "--batches=2", f"--data_dir={root}")
    assert d.returncode == 0, d.stderr[-2000:]
    loss = float(d.stdout.split(", loss ")[1].split()[0])
    rows = [line.split("|")[1:-1] for line in d.stdout.splitlines() if line.startswith("| ") and len(line) > 3]
    table = rows[rows.index(next(r for r in rows if "depth of the predicted token" in r[0])) + 1:]
    end = next(i for i, r in enumerate(table) if r[0].strip() == "all")
    depth_rows, kinds = table[:end + 1], table[end + 1:]
    shares = [float(r[1]) for r in depth_rows[:-1]]
    assert abs(sum(shares) - 1) < 0.01 and all(int(r[0]) <= TINY.depth_max for r in depth_rows[:-1])
    # the kinds (words the parse fixes, choices) and the '.' rows partition the tokens: their excess adds up to all's
    parts = kinds + [r for r in depth_rows if r[0].strip() == "0"]  # '.' rows, where the windows hold one
    assert len(kinds) == 2 and sum(float(r[1]) for r in parts) == pytest.approx(1, abs=0.01)
    assert sum(float(r[1]) * float(r[-1]) for r in parts) == pytest.approx(float(depth_rows[-1][-1]), abs=2e-3)
    gen, nll = torch.Generator().manual_seed(20250211), split(root, "val_nll", np.float32).ravel()
    starts = [i for _ in range(2) for i in (torch.randint(40, (4,), generator=gen) * 17).tolist()]
    floor = np.mean([nll[i + 1:i + 17] for i in starts])
    assert float(depth_rows[-1][2]) == pytest.approx(floor, abs=1e-4)
    assert float(depth_rows[-1][-1]) == pytest.approx(loss - floor, abs=2e-4)
    assert (out / "diagnose_r2_depth.png").stat().st_size > 0
    b = cli("bench_inference.py", "--depth", out, "--windows=8", "--split=val", "--new_tokens=4")
    assert b.returncode == 0, b.stderr[-2000:]
    floor = np.mean([nll[i + 1:i + 17] for i in 17 * np.linspace(0, 39, 8).astype(int)])
    assert f"floor on them {floor:.4f}" in b.stdout
    for line in [x for x in b.stdout.splitlines() if "| A^2B |" in x]:
        cells = line.split("|")
        assert float(cells[6]) == pytest.approx(float(cells[5]) - floor, abs=2e-4)
    e = cli("bench_inference.py", "--exit", out, "--windows=8", "--split=val", "--max_r=[3]", "--repeats=1",
            "--new_tokens=4", "--prompt=2", "--batch=2")
    assert e.returncode == 0, e.stderr[-2000:]
    assert "mean rounds by nesting depth of the predicted token" in e.stdout and "| oracle |" in e.stdout
