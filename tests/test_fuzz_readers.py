"""A fuzz pass over every dataset reader and the pseudo-label reader. Each case spoils one file of a small dataset in its
real layout (random bytes, a truncated file, a missing one, a wrong mode, a wrong size...) and states what must come
of reading it: a correct sample ('ok'), a `DataError` that names the file, or the pair left out by GTA5's size check
('dropped'). No other exception may escape a reader. The scan before training (`dass_nb.data.scan`) must agree: it
names the file of every case that must fail, and nothing in a case that must read. Seeded, so every run tries the same
cases; the last test prints how many cases gave which outcome (`pytest -s`)."""
import collections, io, logging, warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dass_nb.data import DataError, get_dataset, scan_dataset, write_png
from dass_nb.methods.self_training import pseudo_label_dataset
from test_data_readers import LAYOUTS   # each layout's writer: 3 samples of 8x16

H, W = 8, 16
IDS = {'gta5': range(35), 'synthia': range(24), 'cityscapes': range(35), 'bdd100k': range(19), 'mapillary': range(66),
       'idd': range(19), 'synscapes': range(35), 'folder': range(5)}
OUTCOMES = collections.Counter()

# ---- spoiling a file: each mutation writes `path` anew from its good bytes `good`
def _png(a, mode=None):
    b = io.BytesIO(); im = Image.fromarray(a, mode) if mode else Image.fromarray(a)
    if mode == 'P': im.putpalette(list(range(256)) * 3)
    im.save(b, 'PNG'); return b.getvalue()

def _arr(rng, shape, dtype=np.uint8, high=None): return rng.integers(0, high or np.iinfo(dtype).max, shape).astype(dtype)

BYTES = {  # name: (good bytes, rng) -> bad bytes; every one must fail
    'random': lambda g, r: r.bytes(int(r.integers(1, 2000))),
    'empty': lambda g, r: b'',
    'png_signature_then_noise': lambda g, r: b'\x89PNG\r\n\x1a\n' + r.bytes(int(r.integers(0, 600))),
    'jpeg_marker_then_noise': lambda g, r: b'\xff\xd8' + r.bytes(int(r.integers(0, 600))),
    'truncated': lambda g, r: g[:int(len(g) * r.uniform(0.05, 0.95))],
    'header_only': lambda g, r: g[:33],
    'end_cut': lambda g, r: g[:-12],
}
SEEDS = {'random': 3, 'png_signature_then_noise': 2, 'jpeg_marker_then_noise': 2, 'truncated': 3}

def _flip(g, r):
    "A few bytes past the header changed: corrupt data between intact ends, which only decoding can find."
    b = bytearray(g)
    for i in r.integers(40, len(b) - 16, 3): b[i] ^= 0xFF
    return bytes(b)

def _to_dir(path):
    path.unlink(); path.mkdir()

# decodable files of another kind than the layout's: role -> name -> (writer(path, rng), expected by label channel)
# expected: {None: outcome where the reader needs one channel, 0: where it reads channel 0 (SYNTHIA)}
def _img(a, mode=None): return lambda p, r: p.write_bytes(_png(a(r), mode))
IMAGE_KINDS = {
    'rgba': _img(lambda r: _arr(r, (H, W, 4)), 'RGBA'), 'grey': _img(lambda r: _arr(r, (H, W))),
    'palette': _img(lambda r: _arr(r, (H, W), high=200), 'P'), 'rgb16': lambda p, r: write_png(p, _arr(r, (H, W, 3), np.uint16)),
    'jpeg_bytes': lambda p, r: Image.fromarray(_arr(r, (H, W, 3))).save(p, 'JPEG'),
}
LABEL_KINDS = {  # name: (writer, outcome with one channel required, outcome with channel 0 read)
    'rgb': (_img(lambda r: _arr(r, (H, W, 3), high=30)), 'DataError', 'ok'),
    'rgba': (_img(lambda r: _arr(r, (H, W, 4), high=30), 'RGBA'), 'DataError', 'ok'),
    'grey_alpha': (_img(lambda r: _arr(r, (H, W, 2), high=30), 'LA'), 'DataError', 'ok'),
    'grey16': (lambda p, r: write_png(p, _arr(r, (H, W), np.uint16)), 'ok', 'ok'),   # IDs past the table are ignored
    'palette': (_img(lambda r: _arr(r, (H, W), high=30), 'P'), 'ok', 'ok'),
    'grey': (_img(lambda r: _arr(r, (H, W), high=30)), 'ok', 'ok'),
    'one_bit': (_img(lambda r: _arr(r, (H, W), high=2).astype(bool)), 'ok', 'ok'),
}
DEPTH_KINDS = {'grey8': lambda p, r: p.write_bytes(_png(_arr(r, (H, W)))), 'grey16': lambda p, r: write_png(p, _arr(r, (H, W), np.uint16))}

# ---- the readers: name -> (layout writer, how to build the dataset of a folder)
def _reader(name, listed=False):
    def build(d):
        if name == 'gta5' and listed: (d/'all.txt').write_text('00000\n00001\n00002\n')
        split, _ = LAYOUTS[name][0](d, IDS[name])
        spec = f'folder:{d}' if name == 'folder' else name
        return lambda: get_dataset(spec, split, root=d, num_classes=None)
    return build

def _pseudo(d):
    "Cityscapes images with pseudo labels (train IDs) written as a stage writes them."
    split, truth = LAYOUTS['cityscapes'][0](d/'cs', IDS['cityscapes'])
    base = get_dataset('cityscapes', split, root=d/'cs')
    for i, (n, _) in enumerate(truth): write_png(d/'pl'/f'{n}.png', _arr(np.random.default_rng(i), (H, W), high=19))
    return lambda: pseudo_label_dataset(base, d/'pl')

READERS = {**{n: _reader(n) for n in LAYOUTS}, 'gta5 (all.txt)': _reader('gta5', listed=True), 'pseudo labels': _pseudo}

def _cases(reader):
    "(role, mutation, seed, expected outcome) of every case of `reader`."
    roles = ['image', 'pseudo'] if reader == 'pseudo labels' else ['image', 'label', 'depth'] if reader == 'synthia' else ['image', 'label']
    out = []
    for role in roles:
        out += [(role, m, s, {'DataError'}) for m in BYTES for s in range(SEEDS.get(m, 1))]
        out += [(role, 'bitflip', s, {'DataError', 'ok'}) for s in range(3)]
        out += [(role, 'directory', 0, {'DataError'})]
        if role != 'image': out += [(role, 'missing', 0, {'FileNotFoundError' if role == 'pseudo' else 'DataError'})]
        kinds = IMAGE_KINDS if role == 'image' else DEPTH_KINDS if role == 'depth' else LABEL_KINDS
        for k, v in kinds.items():
            ch0 = reader == 'synthia'
            out.append((role, k, 0, {v[2] if ch0 else v[1]} if isinstance(v, tuple) else {'ok'}))
        # a size other than the image's: GTA5's check leaves the pair out unless all.txt is trusted
        out.append((role, 'other_size', 0, {'dropped' if reader == 'gta5' and role != 'depth' else 'DataError'}))
    return out

def _spoil(path:Path, good:bytes, role, mutation, rng):
    if mutation in BYTES: path.write_bytes(BYTES[mutation](good, rng))
    elif mutation == 'bitflip': path.write_bytes(_flip(good, rng))
    elif mutation == 'directory': _to_dir(path)
    elif mutation == 'missing': path.unlink()
    elif mutation == 'other_size':
        a = _arr(rng, (H // 2, W // 2, 3) if role == 'image' else (H // 2, W // 2), high=19)
        path.write_bytes(_png(a)) if role != 'depth' else write_png(path, a.astype(np.uint16))
    else:
        kinds = IMAGE_KINDS if role == 'image' else DEPTH_KINDS if role == 'depth' else LABEL_KINDS
        k = kinds[mutation]; (k[0] if isinstance(k, tuple) else k)(path, rng)

def _outcome(build, name:str, path:Path)->str:
    "What reading sample `name` gave: 'ok', 'dropped', or the exception's type (with ' (unnamed)' if its message lacks `path`)."
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always'); ds = build()
        if name not in ds.names: return 'dropped' if any(path.name in str(x.message) for x in w) else 'absent'
        s = ds[ds.names.index(name)]
    except Exception as e:
        return type(e).__name__ + ('' if str(path) in str(e) else ' (unnamed)')
    ok = s['image'].shape == (3, H, W) and s['image'].dtype == torch.uint8 and s['label'].shape == (H, W)
    return 'ok' if ok and ('depth' not in s or s['depth'].shape == (1, H, W)) else 'wrong sample'

@pytest.fixture
def quiet():
    "No log line per case (GTA5 without all.txt says how to write it each time it is read)."
    log = logging.getLogger('dass_nb'); log.disabled = True
    yield
    log.disabled = False

@pytest.mark.parametrize('reader', list(READERS))
def test_fuzz_reader(tmp_path, reader, quiet):
    build = READERS[reader](tmp_path)
    ds = build()
    files = {'image': ds.files[1][0], 'label': ds.files[1][1], 'depth': ds.files[1][2], 'pseudo': ds.files[1][1]}
    name, wrong = ds.names[1], []
    for k, (role, mutation, seed, expected) in enumerate(_cases(reader)):
        path, rng = Path(files[role]), np.random.default_rng([k, seed])
        good = path.read_bytes()
        _spoil(path, good, role, mutation, rng)
        got = _outcome(build, name, path)
        OUTCOMES[got] += 1
        if got not in expected: wrong.append(f"{role} {mutation} (seed {seed}): {got}, expected {sorted(expected)}")
        if expected in ({'DataError'}, {'ok'}) and got in expected:   # the scan agrees with the read
            found = scan_dataset(build())
            if (expected == {'DataError'}) != any(str(path) in p for p in found):
                wrong.append(f"{role} {mutation} (seed {seed}): read {got} but the scan found {found}")
        if path.is_dir(): path.rmdir()
        path.write_bytes(good)
    assert not wrong, f"{reader}:\n" + '\n'.join(wrong)

def test_zz_summary():
    "Runs last (pytest keeps a file's order): the outcomes of every case above."
    total = sum(OUTCOMES.values())
    print(f"\nfuzz: {total} cases; outcomes: {dict(OUTCOMES.most_common())}")
    if total: assert set(OUTCOMES) <= {'ok', 'DataError', 'dropped', 'FileNotFoundError'}, OUTCOMES
