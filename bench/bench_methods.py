"""Training-step time of each method as a ratio to the bare model's forward+backward+SGD step on the same
batch (framework overhead; UDA methods also run a target pass and a discriminator), and evaluation
throughput as a ratio to a bare forward loop."""
import torch, torch.nn.functional as F
from types import SimpleNamespace
from common import timeit, row
from dass_nb.core import METHODS, MODELS, seed_everything
from dass_nb.engine import evaluate
import dass_nb.methods

B, H, W, K = 2, 192, 384, 19
BACKBONE = 'deeplab_r18'

def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 3, H, W, generator=g)
    return SimpleNamespace(x_s=x, y_s=torch.randint(0, K, (B, H, W), generator=g), x_t=x.flip(-1), pl_t=None, depth_s=None, dom_s=None)

def bare_step(model, opt, b):
    opt.zero_grad()
    out = model(b.x_s)
    F.cross_entropy(F.interpolate(out.logits, (H, W), mode='bilinear', align_corners=True), b.y_s, ignore_index=255).backward()
    opt.step()

if __name__ == '__main__':
    torch.set_num_threads(max(1, torch.get_num_threads()))
    seed_everything(0)
    b = batch()
    model = MODELS.create(BACKBONE, num_classes=K, weights=None)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    ref = timeit(lambda: bare_step(model, opt, b), n=5, warmup=1)
    for name in ('source_only', 'adaptsegnet', 'advent', 'minent'):
        M = METHODS.get(name)   # the method's own network (ADVENT is multi-level by default: an aux head)
        m = M(M.network(lambda **kw: MODELS.create(BACKBONE, num_classes=K, weights=None, **kw), M.Options(), K), K)
        row(f'{name} train_step {B}x{H}x{W} {BACKBONE}', timeit(lambda: m.train_step(b), n=5, warmup=1),
            'bare fwd+bwd+SGD (source batch)', ref)
    model.eval()
    val = [{'image': b.x_s[0], 'label': b.y_s[0]} for _ in range(8)]   # a dataset of 8 samples
    def bare_eval():
        with torch.no_grad():
            for s in val: model(s['image'][None]).logits.argmax(1)
    row(f'evaluate 8 images {H}x{W}', timeit(lambda: evaluate(model, val, K), n=3, warmup=1), 'bare forward loop', timeit(bare_eval, n=3, warmup=1))
