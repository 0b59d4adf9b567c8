"""The collective helpers over two gloo processes: real sums and broadcasts, the caller's device, dtype and layout kept, and the
pseudo-label threshold histogram (built on the host) reduced through them; the depth evaluation sums every rank's share."""
import socket
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from types import SimpleNamespace

class ToyDepth(nn.Module):
    "A network whose depth head predicts 1 everywhere."
    def __init__(self): super().__init__(); self.w = nn.Parameter(torch.ones(()))
    def forward(self, x): return SimpleNamespace(depth=self.w * torch.ones(x.shape[0], 1, *x.shape[-2:]))

def depth_split():
    "Four 2x2 samples whose true depth is 1 + index: a per-rank share scores differently from the whole split."
    return [{'image': torch.zeros(3, 2, 2), 'depth': torch.full((1, 2, 2), 1. + i)} for i in range(4)]

def free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def worker(rank, world, port, out):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    from dass_nb.core import all_reduce_, broadcast_, barrier, collective_device
    from dass_nb.kernels import ClassThresholds
    a = torch.arange(6).reshape(2, 3) + 10 * rank                             # int64
    v = (torch.ones(3, 2, dtype=torch.float64) * (rank + 1)).T                 # a non-contiguous view
    b = torch.full((4,), float(rank), dtype=torch.float16)
    ids = tuple(map(id, (a, v, b)))
    all_reduce_(a); all_reduce_(v); broadcast_(b, src=1); barrier()
    probs = torch.zeros(1, 3, 2, 2); probs[:, rank] = 0.6 + 0.2 * rank         # rank 0 predicts class 0, rank 1 class 1
    ct = ClassThresholds(3, cap=0.95, bins=100).update(probs).sync()
    from dass_nb.methods.depth_distribution import _depth_eval_stage
    dm = _depth_eval_stage(ToyDepth(), depth_split())
    torch.save({'depth': dm, 'a': a, 'v': v, 'b': b, 'same': tuple(map(id, (a, v, b))) == ids, 'contig': v.is_contiguous(),
                'dev': str(collective_device()), 'thr': ct.compute(), 'hist': ct.hist.sum(1)}, f'{out}/rank{rank}.pt')
    from dass_nb.engine import end_distributed
    end_distributed()   # what dass_train and dass_eval end with: a process exiting with its gloo group alive can abort
    assert not dist.is_initialized()

def test_collectives_over_two_gloo_ranks(tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for r in (0, 1):
        got = torch.load(tmp_path/f'rank{r}.pt', weights_only=True)
        assert got['same'] and not got['contig'] and got['dev'] == 'cpu'
        assert got['a'].dtype == torch.int64 and torch.equal(got['a'], 2 * torch.arange(6).reshape(2, 3) + 10)
        assert got['v'].dtype == torch.float64 and torch.equal(got['v'], torch.full((2, 3), 3., dtype=torch.float64))
        assert got['b'].dtype == torch.float16 and torch.equal(got['b'], torch.ones(4, dtype=torch.float16))
        assert got['hist'].tolist() == [4, 4, 0]                                # both ranks' pixels
        assert torch.allclose(got['thr'], torch.tensor([0.605, 0.805, 0.], dtype=got['thr'].dtype))
        assert got['depth']['pixels'] == 16 and all(abs(got['depth'][k] - v) < 1e-12 for k, v in WHOLE.items() if k != 'pixels')

def test_depth_eval_in_one_process_is_the_whole_split():
    from dass_nb.methods.depth_distribution import _depth_eval_stage
    got = _depth_eval_stage(ToyDepth(), depth_split())
    assert got['pixels'] == 16 and all(abs(got[k] - v) < 1e-12 for k, v in WHOLE.items() if k != 'pixels')

WHOLE = {'abs_rel': (0 + 1/2 + 2/3 + 3/4) / 4, 'sq_rel': (0 + 1/2 + 4/3 + 9/4) / 4, 'pixels': 16}

def test_every_collective_goes_through_core():
    "NCCL needs CUDA tensors: a direct `dist.*` collective elsewhere would skip the helper's move to the backend's device."
    import re
    from pathlib import Path
    import dass_nb
    pat = re.compile(r'\b(?:dist|torch\.distributed)\.(?:all_reduce|all_gather\w*|broadcast\w*|barrier|reduce\w*|gather|scatter)\(')
    hits = [f'{p.name}:{i}' for p in Path(dass_nb.__file__).parent.rglob('*.py') if p.name != 'core.py'
            for i, l in enumerate(p.read_text().splitlines(), 1) if pat.search(l)]
    assert hits == []
