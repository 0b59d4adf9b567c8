"Dataset readers on tiny fixtures in each real layout, bad-input errors, and the loaders' determinism, sharding and resume."
import json, subprocess, sys, warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dass_nb.core import IGNORE
from dass_nb.data import (ClassBalancedSampler, DataError, InfiniteLoader, MultiSourceLoader, eval_loader, get_dataset,
                          label_lut, train_id_table, train_transform, MAPILLARY_V12)
from dass_nb.data.datasets import _fixture_pair
from dass_nb.data.png import write_png
from dass_nb.data.prep import compute_label_stats
from dass_nb.data.transforms import _aligned, _pattern, make_generator, denormalize

ROOT = Path(__file__).resolve().parents[1]

# (spec, layout writer) -- each writer makes 3 samples of 8x16 with raw IDs from `ids` and returns
# [(name, raw label)] in the reader's order, plus the split to read
def _gta5(d, ids):
    return 'all', [(f'{i:05d}', _fixture_pair(d/f'images/{i:05d}.png', d/f'labels/{i:05d}.png', ids, seed=i, mode='P')) for i in range(3)]

def _synthia(d, ids):
    out = [(f'{i:07d}', _fixture_pair(d/f'RGB/{i:07d}.png', d/f'GT/LABELS/{i:07d}.png', ids, seed=i, mode='rgb16')) for i in range(3)]
    for i in range(3): write_png(d/f'Depth/{i:07d}.png', np.full((8, 16, 3), 10*i, np.uint16))
    return 'all', out

def _cityscapes(d, ids):
    names = ['aachen/aachen_000000_000019', 'aachen/aachen_000001_000019', 'bremen/bremen_000000_000019']
    return 'val', [(n, _fixture_pair(d/f'leftImg8bit/val/{n}_leftImg8bit.png', d/f'gtFine/val/{n}_gtFine_labelIds.png', ids, seed=i))
                   for i, n in enumerate(names)]

def _bdd(d, ids):
    return 'val', [(f'b{i}', _fixture_pair(d/f'images/val/b{i}.jpg', d/f'labels/val/b{i}_train_id.png', ids, seed=i)) for i in range(3)]

def _mapillary(d, ids):
    (d/'config.json').parent.mkdir(parents=True, exist_ok=True)
    (d/'config.json').write_text(json.dumps({'labels': [{'name': n, 'readable': r, 'color': list(c)} for n, r, c in MAPILLARY_V12]}))
    return 'val', [(f'm{i}', _fixture_pair(d/f'validation/images/m{i}.jpg', d/f'validation/labels/m{i}.png', ids, seed=i, mode='P')) for i in range(3)]

def _idd(d, ids):
    names = ['0/000123', '0/000456', '1/000007']
    return 'val', [(n, _fixture_pair(d/f'leftImg8bit/val/{n}_leftImg8bit.png', d/f'gtFine/val/{n}_gtFine_labelcsTrainIds.png', ids, seed=i))
                   for i, n in enumerate(names)]

def _synscapes(d, ids):
    return 'all', [(str(i), _fixture_pair(d/f'img/rgb/{i}.png', d/f'img/class/{i}.png', ids, seed=i)) for i in (1, 2, 3)]

def _folder(d, ids):
    d.mkdir(parents=True, exist_ok=True); (d/'classes.txt').write_text('\n'.join(f'c{k}' for k in range(5)))
    return 'train', [(f'x{i}', _fixture_pair(d/f'train/images/x{i}.png', d/f'train/labels/x{i}.png', ids, seed=i)) for i in range(3)]

LAYOUTS = {  # name: (writer, raw IDs to draw, protocols to check, table name)
    'gta5': (_gta5, range(35), (19, 16, 7)), 'synthia': (_synthia, range(24), (19, 16, 7)),
    'cityscapes': (_cityscapes, range(35), (19, 16, 7)), 'bdd100k': (_bdd, [*range(21), 255], (19,)),
    'mapillary': (_mapillary, range(66), (19, 7)), 'idd': (_idd, [*range(21), 255], (19,)),
    'synscapes': (_synscapes, range(35), (19, 16, 7)), 'folder': (_folder, [0, 1, 2, 3, 4, 9, 255], (5,)),
}

@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_reader_matches_label_table(tmp_path, name):
    writer, ids, protocols = LAYOUTS[name]
    split, truth = writer(tmp_path/name, ids)
    for k in protocols:
        ds = get_dataset(name if name != 'folder' else f'folder:{tmp_path/name}', split, root=tmp_path/name,
                         num_classes=None if name == 'folder' else k)
        assert ds.names == [n for n, _ in truth]
        lut = label_lut(train_id_table(name, k))
        for i, (n, raw) in enumerate(truth):
            s = ds[i]
            assert s['image'].shape == (3, 8, 16) and s['image'].dtype == torch.uint8
            assert s['label'].dtype == torch.long and s['name'] == n and s['domain'] == 0
            np.testing.assert_array_equal(s['label'].numpy(), lut[raw])
            assert set(s['label'].unique().tolist()) <= set(range(k)) | {IGNORE}
            assert ('depth' in s) == (name == 'synthia')
    if name == 'synthia':
        torch.testing.assert_close(ds[2]['depth'], torch.full((1, 8, 16), 65536/21))

def test_data_root_env(tmp_path, monkeypatch):
    _gta5(tmp_path/'gta5', range(35))
    monkeypatch.setenv('DASS_DATA', str(tmp_path))
    assert len(get_dataset('gta5', 'all')) == 3

def test_missing_root_and_split_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match='leftImg8bit/{split}'): get_dataset('cityscapes', 'val', root=tmp_path/'nope')
    _gta5(tmp_path/'gta5', range(35))
    with pytest.raises(FileNotFoundError, match='split list val.txt') as e: get_dataset('gta5', 'val', root=tmp_path/'gta5')
    assert 'data_prep' in str(e.value)
    with pytest.raises(KeyError, match='known datasets'): get_dataset('kitti', 'val', root=tmp_path)

def test_unreadable_image_is_named(tmp_path):
    _, truth = _cityscapes(tmp_path, range(35))
    bad = tmp_path/f'leftImg8bit/val/{truth[1][0]}_leftImg8bit.png'
    bad.write_bytes(b'garbage')
    ds = get_dataset('cityscapes', 'val', root=tmp_path)
    with pytest.raises(OSError, match=str(bad.name)): ds[1]

def test_size_mismatch_names_both_files(tmp_path):
    _fixture_pair(tmp_path/'leftImg8bit/val/a/a_0_0_leftImg8bit.png', tmp_path/'gtFine/val/a/a_0_0_gtFine_labelIds.png',
                  range(34), lab_size=(4, 8))
    with pytest.raises(ValueError) as e: get_dataset('cityscapes', 'val', root=tmp_path)[0]
    assert 'a_0_0_leftImg8bit.png' in str(e.value) and 'a_0_0_gtFine_labelIds.png' in str(e.value)

def test_gta5_mismatch_skipped_with_one_warning(tmp_path):
    _gta5(tmp_path, range(35))
    _fixture_pair(tmp_path/'images/00007.png', tmp_path/'labels/00007.png', range(35), lab_size=(4, 8), mode='P')
    _fixture_pair(tmp_path/'images/00008.png', tmp_path/'labels/00008.png', range(35), lab_size=(4, 4), mode='P')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        ds = get_dataset('gta5', 'all', root=tmp_path)
    assert len(ds) == 3 and len(w) == 1
    assert '00007.png' in str(w[0].message) and '00008.png' in str(w[0].message)

def test_transforms_keep_alignment():
    for seed in range(30):
        tfm = train_transform(crop=(6, 12), scale=(0.5, 2.0), flip=True, norm='none', interpolation='nearest')
        s = tfm(_pattern(), make_generator(seed))
        assert s['image'].shape == (3, 6, 12) and s['depth'].shape == (1, 6, 12)
        assert _aligned(dict(s, image=denormalize(s['image'], 'none')))

# ---- loaders on a real reader with random augmentation
@pytest.fixture
def gta(tmp_path):
    for i in range(10):
        _fixture_pair(tmp_path/f'images/{i:05d}.png', tmp_path/f'labels/{i:05d}.png', [7, 26] if i < 2 else [7, 8], seed=i, mode='P')
    return get_dataset('gta5', 'all', root=tmp_path, transform=train_transform(crop=(4, 8), scale=(0.5, 1.5), jitter=(.3, .3, .3, .1)))

def _take(loader, n):
    it = iter(loader); return [next(it) for _ in range(n)]

def _same(a, b):
    assert a['name'] == b['name']
    for k in ('image', 'label', 'domain'): torch.testing.assert_close(a[k], b[k])

def test_loader_deterministic_and_resumable(gta):
    full = _take(InfiniteLoader(gta, 3, seed=5), 10)
    for x, y in zip(full, _take(InfiniteLoader(gta, 3, seed=5), 10)): _same(x, y)
    a = InfiniteLoader(gta, 3, seed=5); first = _take(a, 4); st = a.state_dict()
    assert st['iter'] == 4
    b = InfiniteLoader(gta, 3, seed=5); b.load_state_dict(st)
    for x, y in zip(full, first + _take(b, 6)): _same(x, y)
    assert [x['name'] for x in full] != [x['name'] for x in _take(InfiniteLoader(gta, 3, seed=6), 10)]

def test_loader_workers_do_not_change_batches(gta):
    for x, y in zip(_take(InfiniteLoader(gta, 2, seed=1), 6), _take(InfiniteLoader(gta, 2, seed=1, num_workers=2), 6)): _same(x, y)

def test_ddp_shards_are_disjoint_and_cover_each_epoch(gta):
    per_rank = [[n for b in _take(InfiniteLoader(gta, 1, seed=0, rank=r, world_size=2), 5) for n in b['name']] for r in (0, 1)]
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == gta.names
    # an epoch of 10 over 3 ranks: 3 each, the 10th sample of the epoch is dropped
    per_rank = [[n for b in _take(InfiniteLoader(gta, 3, seed=0, rank=r, world_size=3), 1) for n in b['name']] for r in range(3)]
    assert len(set(sum(per_rank, []))) == 9

def test_eval_loader_shards_in_order(gta):
    names = [[n for b in eval_loader(gta, 2, rank=r, world_size=3) for n in b['name']] for r in range(3)]
    assert sorted(sum(names, [])) == gta.names and names[0] == gta.names[0::3]

def test_class_balanced_sampler_statistics(gta):
    st = compute_label_stats('gta5', Path(gta.files[0][0]).parents[1], 'all', 19)
    assert st['counts'][:, 13].nonzero()[0].tolist() == [0, 1]       # car (raw 26) only in images 0 and 1
    sampler = ClassBalancedSampler.from_stats(st, names=gta.names, sub_epoch=400)
    draws = sampler(0, seed=0)
    assert 0.25 < np.isin(draws, [0, 1]).mean() < 0.75                 # uniform sampling would give 0.2
    loader = InfiniteLoader(gta, 4, seed=0, sampler=sampler)
    names = [n for b in _take(loader, 20) for n in b['name']]
    assert sum(n in ('00000', '00001') for n in names) > 20
    ranks = [[n for b in _take(InfiniteLoader(gta, 4, seed=0, sampler=sampler, rank=r, world_size=2), 5) for n in b['name']] for r in (0, 1)]
    assert ranks[0] == [gta.names[i] for i in draws[0:40:2]] and ranks[1] == [gta.names[i] for i in draws[1:40:2]]

def test_loader_skips_a_file_that_fails_to_decode(gta, caplog):
    clean = _take(InfiniteLoader(gta, 3, seed=5), 8)
    bad = Path(gta.files[4][0]); bad.write_bytes(bad.read_bytes()[:-30])      # image 00004 truncated
    with pytest.raises(DataError, match='00004.png'): _take(InfiniteLoader(gta, 3, seed=5), 8)   # max_bad=0: the first stops it
    loader = InfiniteLoader(gta, 3, seed=5, max_bad=0.1)
    caplog.clear()
    with caplog.at_level('WARNING', 'dass_nb'): got = _take(loader, 8)
    for c, g in zip(clean, got):
        assert g['name'] == [n if n != '00004' else '00005' for n in c['name']]
        for k, n in enumerate(c['name']):
            if n != '00004': torch.testing.assert_close(g['image'][k], c['image'][k])
    assert loader.skipped == sum(n == '00004' for c in clean for n in c['name']) > 0 and list(loader.bad) == [4]
    assert sum('00004.png' in r.message for r in caplog.records) == loader.skipped

def test_multi_source_batches(gta, tmp_path):
    _, truth = _cityscapes(tmp_path/'cs', range(35))
    cs = get_dataset('cityscapes', 'val', root=tmp_path/'cs', transform=train_transform(crop=(4, 8)))
    full = _take(MultiSourceLoader([gta, cs], 2, seed=0), 5)
    assert full[0]['domain'].tolist() == [0, 0, 1, 1] and full[0]['image'].shape == (4, 3, 4, 8)
    assert all(n in gta.names for n in full[0]['name'][:2]) and all(n in cs.names for n in full[0]['name'][2:])
    m = MultiSourceLoader([gta, cs], 2, seed=0); _take(m, 2)
    r = MultiSourceLoader([gta, cs], 2, seed=0); r.load_state_dict(m.state_dict())
    for x, y in zip(full[2:], _take(r, 3)): _same(x, y)

def test_cityscapes_tables_match_cityscapesscripts():
    labels = pytest.importorskip('cityscapesscripts.helpers.labels').labels
    assert train_id_table('cityscapes', 19) == {l.id: l.trainId for l in labels if 0 <= l.trainId < 255 and l.id >= 0}
    category = {l.id: l.category for l in labels if l.id >= 0}
    groups = ('flat', 'construction', 'object', 'nature', 'sky', 'human', 'vehicle')
    assert all(category[raw] == groups[c] for raw, c in train_id_table('cityscapes', 7).items())

@pytest.mark.parametrize('cmd', ['split_lists', 'gta5_filter', 'label_stats', 'synthia_check', 'check_data'])
def test_data_prep_commands_have_help(cmd):
    import importlib
    from fastcore.script import anno_parser
    fn = getattr(importlib.import_module(f'data_prep.{cmd}'), cmd)
    assert 'usage' in anno_parser(fn.__wrapped__).format_help()

def test_data_prep_label_stats_command(tmp_path):
    _gta5(tmp_path, range(35))
    r = subprocess.run([sys.executable, '-m', 'data_prep.label_stats', '--help'], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and 'usage' in r.stdout
    r = subprocess.run([sys.executable, '-m', 'data_prep.label_stats', 'gta5', str(tmp_path), '--out', str(tmp_path/'s.json')],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert np.array(json.loads((tmp_path/'s.json').read_text())['counts']).shape == (3, 19)

def test_data_prep_check_data_command(tmp_path):
    _, truth = _cityscapes(tmp_path/'cityscapes', range(35))
    cut = tmp_path/f'cityscapes/leftImg8bit/val/{truth[0][0]}_leftImg8bit.png'; cut.write_bytes(cut.read_bytes()[:-20])
    small = tmp_path/f'cityscapes/gtFine/val/{truth[2][0]}_gtFine_labelIds.png'; Image.fromarray(np.zeros((4, 8), np.uint8)).save(small)
    _gta5(tmp_path/'gta5', range(35))
    r = subprocess.run([sys.executable, '-m', 'data_prep.check_data', '--data_root', str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert 'cityscapes val: 3 samples, 2 bad file(s)' in r.stdout and 'gta5 all: 3 samples, 0 bad file(s)' in r.stdout
    assert f'cannot read image {cut}: truncated' in r.stdout and f'label {small} is (4, 8) but image' in r.stdout

# explicit pixels -> expected train IDs, written out from METHODS.md section 6 (independent of train_id_table)
KNOWN = {  # name: (num_classes, [(raw, train id), ...])
    'gta5': (19, [(7, 0), (26, 13), (33, 18), (34, 255), (0, 255)]),
    'synthia': (16, [(3, 0), (21, 3), (1, 9), (11, 15), (16, 255), (22, 255)]),
    'cityscapes': (7, [(8, 0), (13, 1), (20, 2), (22, 3), (23, 4), (25, 5), (30, 6), (15, 255)]),
    'mapillary': (7, [(29, 0), (2, 1), (43, 2), (30, 3), (27, 4), (22, 5), (62, 6), (41, 255), (65, 255)]),
    'synscapes': (16, [(22, 255), (23, 9), (33, 15), (27, 255)]),
}

@pytest.mark.parametrize('name', sorted(KNOWN))
def test_known_pixels(tmp_path, name):
    k, pairs = KNOWN[name]
    writer = LAYOUTS[name][0]
    split, truth = writer(tmp_path, [r for r, _ in pairs])
    ds = get_dataset(name, split, root=tmp_path, num_classes=k)
    raw, lab = truth[0][1], ds[0]['label'].numpy()
    for r, t in pairs: assert (lab[raw == r] == t).all(), (r, t)
    syn19 = {1: 10, 8: 13, 12: 17, 17: 12, 20: 16, 13: 255}
    if name == 'synthia':
        lab19 = get_dataset(name, split, root=tmp_path, num_classes=19)[0]['label'].numpy()
        assert all((lab19[raw == r] == t).all() for r, t in syn19.items())
