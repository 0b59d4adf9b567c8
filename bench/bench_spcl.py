"""SPCL's parts against the obvious implementations: class-wise thresholds streamed into a histogram vs
gathering every pixel and sorting (the original; time, memory and the largest threshold difference),
class feature means in one scatter vs a per-class masked-mean loop, and one contrastive training step
vs two bare forward+backward passes (source and target) of the same network."""
import statistics, time
import numpy as np, torch, torch.nn.functional as F
from types import SimpleNamespace
from common import timeit, row
from dass_nb.core import MODELS, seed_everything
from dass_nb.spcl import ClassThresholds, class_feature_means, SPCL

K = 19

# --- thresholds: Cityscapes train is 2975 images at 512x1024 (1.56e9 pixels); this stream keeps its shape per
# image at a quarter of the side and 24 images, cycling over 4 distinct softmax maps so generation is not timed.
N_IMG, H, W = 24, 128, 256
g = torch.Generator().manual_seed(0)
MAPS = [(torch.randn(1, K, H, W, generator=g) * 3).softmax(1) for _ in range(4)]
stream = lambda: (MAPS[i % 4] for i in range(N_IMG))

def streaming():
    ct = ClassThresholds(K)
    for p in stream(): ct.update(p)
    return ct.compute(), ct.hist.nbytes + H * W * (4 + 8 + 8 + 8)   # histogram + one image's conf/pred/bin/index

def gather_sort():
    confs, preds = [], []
    for p in stream():
        c, l = p.max(1); confs.append(c.reshape(-1)); preds.append(l.reshape(-1))
    held = sum(t.nbytes for t in confs + preds)
    conf, pred = torch.cat(confs), torch.cat(preds)                # both copies exist during the concatenation
    thr = []
    for k in range(K):
        x = conf[pred == k].sort().values
        thr.append(min(0.9, x[int(np.round(0.5 * len(x)))].item()) if len(x) else 0.)
    return torch.tensor(thr, dtype=torch.float64), 2 * held

(thr_s, mem_s), (thr_g, mem_g) = streaming(), gather_sort()
t_s, t_g = timeit(streaming, n=3, warmup=1), timeit(gather_sort, n=3, warmup=1)
px = N_IMG * H * W
row(f'ClassThresholds stream {N_IMG}x{H}x{W} ({px/1e6:.1f} Mpx)', t_s, 'gather all pixels, sort per class', t_g,
    f'| memory {mem_s/2**20:.1f} vs {mem_g/2**20:.1f} MiB (ratio {mem_s/mem_g:.4f}); at 2975x512x1024 the gather '
    f'holds {2975*512*1024*12/2**30:.1f} GiB, the stream stays {mem_s/2**20:.1f} MiB | max |thr diff| {(thr_s - thr_g).abs().max():.1e}')

# --- class feature means at deeplab_r18's feature size for a 512x1024 image (512 ch, stride 8)
feats = torch.randn(2, 512, 64, 128, generator=g)
labels = torch.randint(0, K, (2, 64, 128), generator=g); labels[:, :8] = 255

def loop_means():
    f = feats.permute(0, 2, 3, 1)
    return torch.stack([f[labels == k].mean(0) if (labels == k).any() else feats.new_zeros(512) for k in range(K)])

torch.testing.assert_close(class_feature_means(feats, labels, K)[0], loop_means(), rtol=1e-4, atol=1e-5)
row('class_feature_means 2x512x64x128, 19 cls', timeit(lambda: class_feature_means(feats, labels, K), n=5),
    'per-class masked-mean loop', timeit(loop_means, n=5))

# --- one SPCL contrastive step vs two bare forward+backward passes
B, HS, WS = 1, 128, 256
seed_everything(0)
x = torch.randn(B, 3, HS, WS, generator=g)
y = torch.randint(0, K, (B, HS, WS), generator=g)
b = SimpleNamespace(x_s=x, y_s=y, x_t=x.flip(-1), pl_t=y.flip(-1), depth_s=None, dom_s=None)
model = MODELS.create('deeplab_r18', num_classes=K, weights=None)
opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

def bare_two_passes():
    opt.zero_grad()
    for xi in (b.x_s, b.x_t):
        out = model(xi)
        F.cross_entropy(F.interpolate(out.logits, (HS, WS), mode='bilinear', align_corners=True), y, ignore_index=255).backward()
    opt.step()

m = SPCL(MODELS.create('deeplab_r18', num_classes=K, weights=None), K, prototypes=F.normalize(torch.randn(K, 512, generator=g), dim=1))

def interleaved(a, b, n=4):
    "Median times of `a` and `b` run alternately, so a busy machine slows both alike."
    a(); b(); ta, tb = [], []
    for _ in range(n):
        for f, ts in ((a, ta), (b, tb)): t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)

t_m, t_b = interleaved(lambda: m.train_step(b), bare_two_passes)
row(f'spcl contrastive train_step {B}+{B}x{HS}x{WS} deeplab_r18', t_m, 'bare fwd+bwd x2 (source, target)+SGD', t_b)
