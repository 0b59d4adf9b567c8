"The built-in synthetic benchmark: determinism, class coverage, depth, on-disk layouts read back by the real readers, CLI, golden pixels."
import hashlib, json, struct, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from dass_nb.data.labels import train_id_table, map_labels
from dass_nb.data.png import read_image, read_label, read_pixels
from dass_nb.data.synthetic import (DOMAINS, SKY_DEPTH, image_seed, render_scene, write_domain, layout_files, ensure_benchmark,
                                    is_complete)

ROOT = Path(__file__).resolve().parents[1]
N_COVER, H, W = 60, 128, 256  # images per domain for the class-coverage test (seeds of the real train split)
RARE = {'truck': 14, 'bus': 15, 'train': 16, 'motorcycle': 17, 'bicycle': 18, 'rider': 12, 'traffic light': 6}

def _png_header(path):
    b = Path(path).read_bytes()[:33]
    w, h, depth, ctype = struct.unpack('>IIBB', b[16:26])
    return depth, ctype

@pytest.fixture(scope='module')
def coverage():
    "Per domain, the set of train IDs present in each of N_COVER training images."
    return {d: [set(np.unique(render_scene(image_seed(0, d, 'train', i), d, H, W)['label']).tolist()) for i in range(N_COVER)]
            for d in DOMAINS}

@pytest.mark.parametrize('domain', list(DOMAINS))
def test_deterministic(domain):
    a, b = render_scene(11, domain, 64, 128), render_scene(11, domain, 64, 128)
    for k in ('image', 'label', 'depth', 'part', 'instance'): assert a[k].tobytes() == b[k].tobytes(), k
    assert render_scene(12, domain, 64, 128)['image'].tobytes() != a['image'].tobytes()

def test_image_seeds_independent():
    assert image_seed(0, 'gta5', 'train', 3) == image_seed(0, 'gta5', 'train', 3)
    seeds = {image_seed(s, d, sp, i) for s in (0, 1) for d in DOMAINS for sp in ('train', 'val') for i in range(5)}
    assert len(seeds) == 2*len(DOMAINS)*2*5

@pytest.mark.parametrize('domain', list(DOMAINS))
def test_all_classes_present(coverage, domain):
    present = set().union(*coverage[domain])
    missing = sorted(set(range(19)) - present)
    assert not missing, f"{domain}: classes {missing} never appear in {N_COVER} images"

@pytest.mark.parametrize('domain', list(DOMAINS))
def test_rare_classes_frequent_enough(coverage, domain):
    for name, c in RARE.items():
        share = np.mean([c in s for s in coverage[domain]])
        assert share >= 0.03, f"{domain}: {name} in only {share:.0%} of images"

@pytest.mark.parametrize('domain', list(DOMAINS))
def test_depth_consistent(domain):
    for i in range(3):
        r = render_scene(image_seed(0, domain, 'val', i), domain, H, W)
        d, lab = r['depth'], r['label']
        assert d.dtype == np.float32 and (d > 0).all() and d.max() == np.float32(SKY_DEPTH)
        assert (d[lab == 10] == np.float32(SKY_DEPTH)).all() and (d[lab != 10] < SKY_DEPTH).all()
        for c in range(0, W, 16):  # up a column, road depth only grows towards the horizon
            rows = np.nonzero(lab[:, c] == 0)[0][::-1]
            assert (np.diff(d[rows, c]) >= -1e-3*d[rows, c][1:]).all()

@pytest.fixture(scope='module')
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench')
    for d in DOMAINS: write_domain(root, d, n_train=3, n_val=2, H=64, W=128, progress=False)
    return root

def test_layout_formats(written):
    g = written/'gta5'
    assert Image.open(g/'labels'/'00001.png').mode == 'P' and Image.open(g/'images'/'00004.png').mode == 'RGB'
    assert (g/'val.txt').read_text().split() == ['00004.png', '00005.png']
    s = written/'synthia'
    assert _png_header(s/'GT'/'LABELS'/'0000000.png') == (16, 2)   # 16-bit RGB: class, instance, 0
    assert _png_header(s/'Depth'/'0000000.png') == (16, 0)         # 16-bit grey, centimetres
    lab = read_pixels(s/'GT'/'LABELS'/'0000000.png')
    assert set(np.unique(lab[..., 0])) <= set(range(23)) and lab[..., 1].max() > 0
    assert (np.array(Image.open(s/'parsed_LABELS'/'0000000.png')) == lab[..., 0]).all()
    cs = written/'cityscapes'/'gtFine'/'val'/'frankfurt'/'frankfurt_000000_000019_gtFine_labelIds.png'
    assert Image.open(cs).mode == 'L' and set(np.unique(np.array(Image.open(cs)))) <= {1, 7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}
    assert len(list((written/'bdd100k'/'images'/'val').glob('*.jpg'))) == 2
    assert len(list((written/'bdd100k'/'labels'/'train').glob('*_train_id.png'))) == 3
    m = written/'mapillary'
    assert len(json.loads((m/'config.json').read_text())['labels']) == 66
    lab = next((m/'validation'/'labels').glob('*.png'))
    assert Image.open(lab).mode == 'P' and np.array(Image.open(lab)).max() < 66
    assert len(list((written/'idd'/'gtFine'/'train'/'0').glob('*_gtFine_labelcsTrainIds.png'))) == 3

@pytest.mark.parametrize('domain', list(DOMAINS))
def test_labels_read_back_as_rendered(written, domain):
    "Mapping the stored raw IDs with the real dataset's table gives the rendered train IDs (except lane marks in SYNTHIA)."
    r = render_scene(image_seed(0, domain, 'train', 1), domain, 64, 128)
    f = layout_files(domain, 'train', 1, 0, 3)
    raw = read_pixels(written/domain/f['label'])[..., 0] if domain == 'synthia' else np.array(Image.open(written/domain/f['label']))
    got = map_labels(raw, train_id_table(domain, 19))
    keep = r['part'] == 0 if domain == 'synthia' else np.ones_like(r['label'], bool)
    assert (got[keep] == r['label'][keep]).all()

def test_real_readers_load_it(written):
    datasets = pytest.importorskip('dass_nb.data.datasets')
    splits = {'gta5': 'train', 'synthia': 'val', 'idd': 'val', 'cityscapes': 'val', 'bdd100k': 'train', 'mapillary': 'val'}
    for d, split in splits.items():
        ds = datasets.get_dataset(d, split=split, root=written/d)
        s = ds[0]
        assert tuple(s['image'].shape) == (3, 64, 128) and int(s['label'].max()) <= 255, d
        if d == 'synthia': assert 'depth' in s and float(s['depth'].min()) >= 1.

def test_resume_and_skip(tmp_path):
    out = write_domain(tmp_path, 'idd', n_train=2, n_val=1, H=32, W=64, progress=False)
    assert is_complete(out, 'idd', 0, 2, 1, 32, 64)
    f = out/layout_files('idd', 'val', 0)['label']; before = f.read_bytes()
    f.unlink(); (out/'.synthetic.json').unlink()
    write_domain(tmp_path, 'idd', n_train=2, n_val=1, H=32, W=64, progress=False)
    assert f.read_bytes() == before
    with pytest.raises(FileExistsError): write_domain(tmp_path, 'idd', n_train=3, n_val=1, H=32, W=64, progress=False)

def test_cli_idempotent(tmp_path):
    cmd = [sys.executable, '-m', 'data_prep.make_benchmark', '--root', str(tmp_path), '--domains', 'gta5,bdd100k',
           '--scale', '0.004', '--H', '32', '--W', '64', '--quiet', '--n_workers', '1']
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=300)
    marker = tmp_path/'synthetic'/'gta5'/'.synthetic.json'
    t0 = marker.stat().st_mtime_ns
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=300)
    assert marker.stat().st_mtime_ns == t0
    assert ensure_benchmark(tmp_path, domains='gta5,bdd100k', scale=0.004, H=32, W=64) == tmp_path/'synthetic'

def _digest(folder)->dict:
    "Per file of `folder`: SHA256 of the decoded pixels of images and labels, of the bytes of anything else (as the golden file of b104ccb was recorded)."
    h = {}
    for f in sorted(Path(folder).rglob('*')):
        if not f.is_file(): continue
        rel = f.relative_to(folder).as_posix()
        if f.suffix in ('.png', '.jpg'):
            a = read_image(f).numpy() if ('RGB' in rel or 'images' in rel or 'leftImg8bit' in rel) else read_label(f)
            h[rel] = hashlib.sha256(np.ascontiguousarray(a).tobytes() + str(a.shape).encode() + str(a.dtype).encode()).hexdigest()[:16]
        else: h[rel] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    return h

def test_golden_benchmark(tmp_path):
    "The tiny benchmark of the golden file at b104ccb: the same files with the same pixels, and the same bytes on a second run."
    golden = json.loads((ROOT/'tests'/'golden'/'b104ccb.json').read_text())['benchmark']
    a, b = (ensure_benchmark(tmp_path/k, domains='gta5,synthia,cityscapes', scale=0.01, H=64, W=128) for k in 'ab')
    got = _digest(a)
    # gta5/all.txt came after b104ccb (the list data_prep.gta5_filter writes): every image of the benchmark, sorted
    assert (a/'gta5'/'all.txt').read_text().split() == sorted((a/'gta5'/'train.txt').read_text().split() + (a/'gta5'/'val.txt').read_text().split())
    got = {k: v for k, v in got.items() if k != 'gta5/all.txt'}
    assert sorted(got) == sorted(golden)
    assert [k for k in golden if got[k] != golden[k]] == []
    files = sorted(p.relative_to(a) for p in a.rglob('*') if p.is_file())
    assert all((a/f).read_bytes() == (b/f).read_bytes() for f in files)
