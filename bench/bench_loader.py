"""Feeding the GPU (issue 16): time per training sample and DataLoader throughput on synthetic full-size images.

GTA5-like (1052x1914) and Cityscapes-like (1024x2048) PNG pairs are written once to a temporary folder. For each code
tree given (`--trees A B`, default: this checkout) a fresh process measures, and the trees alternate round by round, so
the medians and the ratio B/A come from one run on the same (shared) cores:
  read      decode + label lookup of one sample (`SegDataset.read`)
  chain     the training transform chain alone on a sample already read (scale 0.5-1.5, crop 512x1024, flip; the
            source also colour jitter 0.3, 0.3, 0.3, 0.05, as the CPU default), normalisation included when it is on the CPU
  sample    `dataset[(i, seed)]`: read + chain, what a worker does per image (target: without labels where supported)
            (where supported, the chain is a run's: uint8 out, normalised later on the device)
  loader wN InfiniteLoader, batch 2, N workers: images per second over 6 batches after the first
  wire MB   bytes of one batch of 2 as it leaves the workers
  gta5 index  seconds to build the GTA5 reader over the pairs (the size scan, or the list `data_prep` writes)
Run: PYTHONPATH=. python bench/bench_loader.py [--trees /work/main .] [--rounds 3]"""
import argparse, inspect, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np

SIZES = {'gta5': (1052, 1914), 'cityscapes': (1024, 2048)}
N = 6   # pairs per dataset

def _scene(h, w, seed):
    "A smooth image with edges (compresses like a photo, not like noise) and a blocky label of Cityscapes label IDs."
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([(x/w*200 + 30*np.sin(y/37 + c)) for c in range(3)], -1)
    lab = rng.choice(np.array([7, 8, 11, 17, 21, 23, 24, 26, 0]), (h//64 + 1, w//64 + 1))[y.astype(int)//64, x.astype(int)//64]
    img += lab[..., None]*3 + rng.normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8), lab.astype(np.uint8)

def make_data(root:Path)->Path:
    import cv2
    if (root/'done').exists(): return root
    for i in range(N):
        img, lab = _scene(*SIZES['gta5'], i)
        for d, a in (('images', img[..., ::-1]), ('labels', lab)):
            (root/'gta5'/d).mkdir(parents=True, exist_ok=True); cv2.imwrite(str(root/'gta5'/d/f'{i:05d}.png'), a)
        img, lab = _scene(*SIZES['cityscapes'], 100 + i)
        for d, suf, a in (('leftImg8bit', 'leftImg8bit', img[..., ::-1]), ('gtFine', 'gtFine_labelIds', lab)):
            (root/'cityscapes'/d/'train'/'city').mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root/'cityscapes'/d/'train'/'city'/f'city_000000_{i:06d}_{suf}.png'), a)
    (root/'done').touch()
    return root

def _median_time(fn, n):
    ts = []
    for k in range(n):
        t0 = time.perf_counter(); fn(k); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)

def measure(root:Path, n:int=8)->dict:
    "This process's numbers for the dass_nb on its path."
    import torch
    from dass_nb.data import get_dataset, InfiniteLoader, make_generator
    from dass_nb.training import Input
    torch.set_num_threads(1)
    inputs = {'gta5': Input(scale=(0.5, 1.5), crop=(512, 1024), jitter=(0.3, 0.3, 0.3, 0.05)),
              'cityscapes': Input(scale=(0.5, 1.5), crop=(512, 1024))}
    out = {}
    for name, inp in inputs.items():
        wire = {'on_device': True} if 'on_device' in inspect.signature(inp.transform).parameters else {}   # as a run's loaders
        ds = get_dataset(name, 'all' if name == 'gta5' else 'train', root=root/name, transform=inp.transform('imagenet', **wire))
        if name == 'cityscapes' and hasattr(ds, 'without_labels'): ds = ds.without_labels()
        s0 = ds.read(0)
        out[f'read {name}'] = _median_time(lambda k: ds.read(k % N), n)
        out[f'chain {name}'] = _median_time(lambda k: ds.transform(dict(s0), make_generator(k)), n)
        out[f'sample {name}'] = _median_time(lambda k: ds[(k % N, k)], n)
        for w in (0, 2):
            it = iter(InfiniteLoader(ds, 2, seed=0, num_workers=w)); b = next(it)
            t0 = time.perf_counter()
            for _ in range(6): b = next(it)
            out[f'loader w{w} {name} img/s'] = 12/(time.perf_counter() - t0)
            del it
        out[f'wire MB {name}'] = sum(v.numel()*v.element_size() for v in b.values() if isinstance(v, torch.Tensor))/2**20
    t0 = time.perf_counter(); get_dataset('gta5', 'all', root=root/'gta5'); out['gta5 index s/pair'] = (time.perf_counter() - t0)/N
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--trees', nargs='+', default=['.']); p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--data', default=str(Path(tempfile.gettempdir())/'dass_bench_loader'))
    p.add_argument('--measure', action='store_true', help=argparse.SUPPRESS)
    a = p.parse_args()
    root = make_data(Path(a.data))
    if a.measure: print(json.dumps(measure(root))); return
    runs = {t: [] for t in a.trees}
    for r in range(a.rounds):
        for t in a.trees:
            env = dict(os.environ, PYTHONPATH=str(Path(t).resolve()))
            res = subprocess.run([sys.executable, __file__, '--measure', '--data', str(root)], env=env, capture_output=True, text=True)
            if res.returncode: sys.exit(f"{t}: {res.stderr[-2000:]}")
            runs[t].append(json.loads(res.stdout.splitlines()[-1]))
    keys = list(runs[a.trees[0]][0])
    med = {t: {k: statistics.median(r[k] for r in rs) for k in keys} for t, rs in runs.items()}
    print(f"{'':28}" + ''.join(f"{Path(t).resolve().name:>14}" for t in a.trees) + ('   ratio last/first' if len(a.trees) > 1 else ''))
    for k in keys:
        unit = 1 if ('img/s' in k or 'MB' in k) else 1e3
        vals = [med[t][k] for t in a.trees]
        print(f"{k + ('' if unit == 1 else ' ms'):28}" + ''.join(f"{v*unit:14.2f}" for v in vals)
              + (f"{vals[-1]/vals[0]:14.3f}" if len(vals) > 1 and vals[0] else ''))

if __name__ == '__main__': main()
