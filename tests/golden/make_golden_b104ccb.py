"""Record 3 training iterations of every method at commit b104ccb (tiny benchmark, seed 0, CPU, 1 thread)."""
import json, sys, hashlib
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
import dass_nb.engine as engine
d = list(engine.fit.__defaults__); d[6] = 1; engine.fit.__defaults__ = tuple(d)   # log every iteration
from dass_nb.train import TrainConfig, train
from dass_nb.data.synthetic import ensure_benchmark
from dass_nb.data import read_image, read_label

root = Path(sys.argv[1]); out = Path(sys.argv[2])
data = ensure_benchmark(root, domains='gta5,synthia,cityscapes', scale=0.01, H=64, W=128)

def digest(folder):
    h = {}
    for f in sorted(Path(folder).rglob('*')):
        if not f.is_file(): continue
        rel = f.relative_to(folder).as_posix()
        if f.suffix in ('.png', '.jpg'):
            a = read_image(f).numpy() if ('RGB' in rel or 'images' in rel or 'leftImg8bit' in rel) else read_label(f)
            h[rel] = hashlib.sha256(np.ascontiguousarray(a).tobytes() + str(a.shape).encode() + str(a.dtype).encode()).hexdigest()[:16]
        else: h[rel] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    return h

base = dict(backbone='deeplab_r18', weights=None, iters=3, batch_size=2, target_batch_size=2, crop=(48, 96),
            eval_every=0, num_workers=0, data_root=str(data), device='cpu', seed=0)
RUNS = {
    'source_only': dict(method='source_only'),
    'oracle': dict(method='oracle'),
    'adaptsegnet': dict(method='adaptsegnet'),
    'adaptsegnet_multi': dict(method='adaptsegnet', method_options={'multi_level': True}),
    'advent': dict(method='advent'),
    'minent': dict(method='minent'),
    'self_training': dict(method='self_training', method_options={'init': 'RUNS/source_only/train/last.pt'}),
    'spcl': dict(method='spcl', iters=8),
    'dg_baseline': dict(method='dg_baseline', source='gta5+synthia', eval_targets='cityscapes,gta5'),
    'ibn': dict(method='ibn', source='gta5+synthia', bn_momentum=0.1),
    'spc': dict(method='spc', source='gta5+synthia'),
    'depth_distribution': dict(method='depth_distribution', source='synthia', num_classes=16, method_options={'st_iters': 3}),
    'depth_m1': dict(method='depth_distribution', source='synthia', num_classes=16, method_options={'ablation': 'M1'}),
    'mlfa': dict(method='mlfa', method_options={'stride': 1, 'translation_iters': 3,
                 'translation_options': {'crop': (32, 32), 'ngf': 8, 'n_blocks': 1, 'ndf': 8}}),
}
def clean(o):
    if isinstance(o, dict): return {k: clean(v) for k, v in o.items() if k not in ('seconds', 'gmm', 'spec', 'from', 'reused_from')}
    if isinstance(o, list): return [clean(v) for v in o]
    return o

res = {'benchmark': digest(data), 'runs': {}}
for name, kw in RUNS.items():
    kw = json.loads(json.dumps(kw).replace('RUNS/', str(root/'runs') + '/'))
    cfg = TrainConfig(**{**base, **kw, 'out_dir': str(root/'runs'/name)})
    try: m = train(cfg)
    except RuntimeError as e: m = {'stages': {}, 'eval': {}, 'target_miou': None}; print(name, 'FAILED at the end:', str(e)[:100])
    logs = {p.parent.relative_to(root/'runs'/name).as_posix(): [clean(json.loads(l)) for l in p.read_text().splitlines()]
            for p in sorted((root/'runs'/name).rglob('metrics.jsonl'))}
    res['runs'][name] = {'config': {k: v for k, v in kw.items()}, 'logs': logs, 'stages': clean(m['stages']),
                         'eval': {k: {kk: vv for kk, vv in v.items()} for k, v in m['eval'].items()}}
    print(name, m['target_miou'], flush=True)
out.write_text(json.dumps(res, indent=1))
