"Depth distribution, slower checks: the GMM data-prep command, the 7-class Mapillary pipeline with ablation M1, resume, heads in checkpoints, and the vectorised parts against plain loops on full-size inputs."
import json, subprocess, sys
from collections import deque
from pathlib import Path
import numpy as np, pytest, torch
from conftest import ROOT

from dass_nb.kernels import spatial_prior_refine, target_density_target, source_density_target
from dass_nb.methods.depth_distribution import load_gmm, DepthDist, SPATIAL_THRESHOLDS, ORIGINAL_GMM as REF
from dass_nb.training import TrainConfig, train, network, resolve_config
from dass_nb.core import METHODS

M1 = {'density': False, 'self_train': False, 'spatial_prior': False}

@pytest.fixture(scope='module')
def syn_bench(tmp_path_factory):
    from dass_nb.data.synthetic import ensure_benchmark
    return ensure_benchmark(tmp_path_factory.mktemp('dd'), domains='synthia,cityscapes,mapillary', scale=0.01, H=64, W=128)

def cfg(root, out, **kw):
    c = dict(method='depth_distribution', source='synthia', num_classes=16, backbone='deeplab_r18', weights=None, iters=2,
             batch_size=1, target_batch_size=1, crop=(48, 96), eval_every=0, num_workers=0, data_root=str(root), out_dir=str(out))
    return TrainConfig(**{**c, **kw})

def test_registered(): assert METHODS.get('depth_distribution') is DepthDist

def test_fit_gmm_command_writes_the_original_layout(syn_bench, tmp_path):
    out = tmp_path/'gmm.json'
    r = subprocess.run([sys.executable, '-m', 'data_prep.fit_gmm', str(Path(syn_bench)/'synthia'), '--num_classes', '7',
                        '--grid', '12x20', '--out', str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    ours, ref = json.loads(out.read_text()), json.loads(REF.read_text())
    (key, d), = ours.items()
    assert key == 'synthia_7cls_20x12'
    r0 = next(iter(ref.values()))
    assert set(d) == set(r0) and set(d['classes'][0]) == set(r0['classes'][0]) and len(d['classes']) == 7
    g = load_gmm(out)
    assert g.means.shape == (7, 5, 3) and torch.allclose(g.weights.sum(1)[g.weights.sum(1) > 0], torch.tensor(1.), atol=1e-5)
    assert (g.means[..., 0] <= 20).all() and (g.means[..., 1] <= 12).all()   # x, y on the grid

def test_m1_on_mapillary_7_classes_resumes_and_keeps_original_hparams(syn_bench, tmp_path):
    tiny = cfg(syn_bench, tmp_path/'run').to_dict()
    c = resolve_config('depth_distribution-mapillary-cpu', **{k: tiny[k] for k in ('backbone', 'weights', 'iters', 'batch_size',
                       'target_batch_size', 'crop', 'eval_every', 'num_workers', 'data_root', 'out_dir')}, method_options=M1)
    assert (c.target, c.num_classes, c.method_options['lr_d'], c.method_options['density']) == ('mapillary', 7, 1e-4, False)
    m = train(c)
    assert list(m['stages']) == ['train', 'depth_eval', 'export']            # M1: no GMM, no self-training
    assert m['num_classes'] == 7 and len(m['per_class_iou']) == 7
    ck = torch.load(tmp_path/'run'/'train'/'last.pt', weights_only=True)['method']
    assert ck['adv']['opt']['param_groups'][0]['base_lr'] == 1e-4             # Mapillary: D learning rate 1e-4
    assert any(k.startswith('heads.depth') for k in ck['model']) and not any(k.startswith('heads.density') for k in ck['model'])
    assert not any(k.startswith('heads.') for k in torch.load(m['final_checkpoint'], weights_only=True)['method']['model'])
    t = (tmp_path/'run'/'train'/'done.json').stat().st_mtime
    m2 = train(c)                                                            # everything done: stages are skipped
    assert (tmp_path/'run'/'train'/'done.json').stat().st_mtime == t and m2['target_miou'] == m['target_miou']

def test_checkpoint_loads_with_heads_attached(syn_bench, tmp_path):
    c = cfg(syn_bench, tmp_path/'run', method_options={'self_train': False, 'spatial_prior': False})   # M2
    train(c)
    model = network(c, init=tmp_path/'run'/'train'/'last.pt')             # the method's network has the heads
    out = model(torch.zeros(1, 3, 48, 96))
    assert out.depth.shape == out.density.shape == (1, 1, *out.logits.shape[-2:])
    final = network(c, init=tmp_path/'run'/'export'/'last.pt')            # the export has none: the network drops them
    assert not final.heads
    with pytest.raises(RuntimeError): network(c.update(method='source_only', method_options={}), init=tmp_path/'run'/'train'/'last.pt')

def flood_fill(lab, thr, ignore=255):
    out, seen, (h, w) = lab.copy(), np.zeros(lab.shape, bool), lab.shape
    for sy in range(h):
        for sx in range(w):
            k = lab[sy, sx]
            if k == ignore or seen[sy, sx]: continue
            seen[sy, sx] = True; q, reg = deque([(sy, sx)]), []
            while q:
                y, x = q.popleft(); reg.append((y, x))
                for ny in range(max(0, y - 1), min(h, y + 2)):
                    for nx in range(max(0, x - 1), min(w, x + 2)):
                        if not seen[ny, nx] and lab[ny, nx] == k: seen[ny, nx] = True; q.append((ny, nx))
            if len(reg) < thr[k]:
                for y, x in reg: out[y, x] = ignore
    return out

@pytest.mark.parametrize('seed', [0, 1])
def test_spatial_prior_matches_a_flood_fill(seed):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 7, (12, 20)).repeat(4, 0).repeat(4, 1)
    lab[rng.random(lab.shape) < 0.1] = 255
    lab[rng.random(lab.shape) < 0.05] = rng.integers(0, 7)
    thr = np.array(SPATIAL_THRESHOLDS['cityscapes7']) / 20
    assert (spatial_prior_refine(lab, thr) == flood_fill(lab, thr)).all()

def test_target_density_on_a_full_grid_matches_a_loop():
    g = load_gmm(REF, 'synthia2cityscapes_16cls', torch.float64)
    gen = torch.Generator().manual_seed(0)
    pred, dep = torch.randint(0, 16, (1, 96, 161), generator=gen), torch.rand(1, 96, 161, generator=gen, dtype=torch.float64) * 250 - 5
    ours = target_density_target(g, pred, dep)[0, 0]
    ys, xs = np.nonzero(np.ones((96, 161)))
    idx = np.random.default_rng(0).choice(len(ys), 500, replace=False)
    for y, x in zip(ys[idx], xs[idx]):
        k, z = pred[0, y, x].item(), dep[0, y, x].item()
        mu, var, pi = g.means[k].numpy(), g.variances[k].numpy(), g.weights[k].numpy()
        p = (pi * (np.exp(-(np.array([x, y, z]) - mu) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var)).prod(1)).sum() if z > 0 else 0.
        assert abs(ours[y, x].item() - 255 * (1 - np.exp(-1e6 * p))) < 1e-6
    # the source target at a pixel whose label is not the prediction is the density at depth 0
    lab = (pred + 1) % 16
    src = source_density_target(g, pred, lab, dep)
    zero = target_density_target(g, pred, torch.full_like(dep, 1e-300))
    assert torch.allclose(src, zero)

def test_a_stage_without_its_gmm_says_so(syn_bench, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the 'gmm' stage"): train(cfg(syn_bench, tmp_path/'run', stage='train'))

@pytest.mark.parametrize('target', ['cityscapes', 'mapillary'])
def test_full_pipeline_7_classes(syn_bench, tmp_path, target):
    m = train(cfg(syn_bench, tmp_path/'run', num_classes=7, target=target))
    assert list(m['stages']) == ['gmm', 'train', 'depth_eval', 'pseudo_labels', 'self_train', 'export']
    assert load_gmm(m['stages']['gmm']['gmm']).num_classes == 7
    pl = m['stages']['pseudo_labels']
    assert 0 <= pl['kept_fraction'] <= pl['confident_fraction'] <= 1 and pl['images'] > 0
    assert len(list((tmp_path/'run'/'pseudo_labels'/'labels').rglob('*.png'))) == pl['images']
    assert m['stages']['self_train']['iters'] == (2 // 3 or 1) and len(m['per_class_iou']) == 7
