"""One SPCL contrastive training step against two bare forward+backward passes (source and target) of the same
network. The kernels it runs on (class-wise thresholds, class feature means) are timed in bench_kernels.py."""
import statistics, time
import torch, torch.nn.functional as F
from types import SimpleNamespace
from common import row
from dass_nb.core import MODELS, seed_everything
from dass_nb.spcl import SPCL

K = 19
g = torch.Generator().manual_seed(0)

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
