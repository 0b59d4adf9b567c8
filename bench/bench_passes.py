"""The offline passes over a split: pseudo labels (class thresholds, then labels written as PNGs) in batches of
`PASS_BATCH` images with a writer thread pool (on a GPU; inline on a CPU, `write_threads`) against the one-image-at-a-time loop with inline PNG writes they
replaced, and evaluation against a bare forward loop; on the model's device (CUDA when there is one, with bf16)."""
import tempfile, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
from common import timeit, row
from dass_nb.core import MODELS, IGNORE, seed_everything
from dass_nb.data import class_colors, write_png
from dass_nb.engine import AMP, PASS_BATCH, evaluate, predictions, probs, write_threads
from dass_nb.methods.self_training import _palette, label_thresholds, pseudo_label, write_pseudo_labels

K, BACKBONE = 19, 'deeplab_r18'
DEV = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
H, W, N = (512, 1024, 64) if DEV.type == 'cuda' else (256, 512, 8)

def split()->list:
    "N samples of random images with random labels (the numbers do not depend on what the network predicts)."
    g = torch.Generator().manual_seed(0)
    return [{'image': torch.randn(3, H, W, generator=g), 'label': torch.randint(0, K, (H, W), generator=g), 'name': f'im{i:03d}'}
            for i in range(N)]

def pseudo_labels_before(model, ds, out_dir, amp):
    "The reference: the two passes as they were, one image per forward, each label copied to the host and written inline."
    thr = label_thresholds(model, ds, K, amp=amp, progress=False, batch_size=1)
    palette, kept = _palette(class_colors(K)), torch.zeros(3)
    for b, out in predictions(model, ds, amp, batch_size=1):
        lab = pseudo_label(probs(out, b['label'].shape[-2:]), thr).cpu()
        kept += torch.tensor([(lab != IGNORE).sum().item(), (lab != IGNORE).sum().item(), lab.numel()])
        for name, l in zip(b['name'], lab): write_png(Path(out_dir)/f'{name}.png', l.numpy().astype(np.uint8), palette=palette)
    return (kept[1] / kept[2]).item()

def pseudo_labels_now(model, ds, out_dir, amp, batch_size=PASS_BATCH):
    thr = label_thresholds(model, ds, K, amp=amp, progress=False, batch_size=batch_size)
    return write_pseudo_labels(model, ds, out_dir, thr, amp, progress=False, batch_size=batch_size)['kept_fraction']

def differing_pixels(a:Path, b:Path, ds)->int:
    "Pixels whose pseudo label differs between the PNGs in `a` and `b` (float rounding of batched convolutions)."
    read = lambda f: np.asarray(Image.open(f))   # palette indices: the train IDs
    return sum(int((read(a/f"{s['name']}.png") != read(b/f"{s['name']}.png")).sum()) for s in ds)

def bare_forward(model, ds, amp):
    "The reference of evaluation: each image through the network and its argmax on the device, nothing else."
    with torch.no_grad(), amp.autocast():
        for s in ds: model(s['image'][None].to(DEV)).logits.argmax(1)

def per_s(t:float)->str: return f'{N / t:7.1f} img/s'

if __name__ == '__main__':
    seed_everything(0)
    ds, amp = split(), AMP(DEV, 'bf16')
    model = MODELS.create(BACKBONE, num_classes=K, weights=None).to(DEV).eval()
    print(f"# {N} images {H}x{W}, {BACKBONE}, {DEV}, PASS_BATCH={PASS_BATCH}", flush=True)
    with tempfile.TemporaryDirectory() as d:
        before, now1, now = Path(d)/'before', Path(d)/'now1', Path(d)/'now'
        t_before = timeit(lambda: pseudo_labels_before(model, ds, before, amp), n=3, warmup=1)
        t_now1 = timeit(lambda: pseudo_labels_now(model, ds, now1, amp, 1), n=3, warmup=1)
        t_now = timeit(lambda: pseudo_labels_now(model, ds, now, amp), n=3, warmup=1)
        same = all((before/f"{s['name']}.png").read_bytes() == (now1/f"{s['name']}.png").read_bytes() for s in ds)
        writes = f'{write_threads(DEV)} writer threads' if write_threads(DEV) else 'inline writes'
        row(f'pseudo labels, batch 1, {writes}', t_now1, 'batch 1, inline PNG writes', t_before,
            f'| {per_s(t_now1)} vs {per_s(t_before)} | files byte-identical: {same}')
        row(f'pseudo labels, batch {PASS_BATCH}, {writes}', t_now, 'batch 1, inline PNG writes', t_before,
            f'| {per_s(t_now)} vs {per_s(t_before)} | pixels differing: {differing_pixels(before, now, ds)} of {N * H * W}')
    t_bare = timeit(lambda: bare_forward(model, ds, amp), n=3, warmup=1)
    for bs in (1, PASS_BATCH):
        t = timeit(lambda: evaluate(model, ds, K, amp, batch_size=bs), n=3, warmup=1)
        row(f'evaluate, batch {bs}', t, 'bare forward loop (batch 1)', t_bare, f'| {per_s(t)} vs {per_s(t_bare)}')
    same = torch.equal(evaluate(model, ds, K, amp, batch_size=1).mat, evaluate(model, ds, K, amp, batch_size=PASS_BATCH).mat)
    print(f"# confusion matrices of batch 1 and batch {PASS_BATCH} identical: {same}", flush=True)
