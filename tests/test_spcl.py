"SPCL under DDP: two gloo processes on 127.0.0.1 must hold identical prototypes, equal to one process seeing both batches."
import socket
from types import SimpleNamespace
import pytest, torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

K, C = 4, 6

def free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def rank_batch(rank):
    "Each rank's own features and labels; class 3 only on rank 1, so a rank alone would treat it as absent."
    g = torch.Generator().manual_seed(rank)
    f = F.normalize(torch.randn(1, C, 4, 5, generator=g), dim=1)
    y = torch.randint(0, 3, (1, 4, 5), generator=g)
    if rank == 1: y[0, 0] = 3
    return f, y

class ToySeg(nn.Module):
    def __init__(self):
        super().__init__(); self.backbone, self.head = nn.Conv2d(3, C, 1), nn.Conv2d(C, K, 1)
    def forward(self, x):
        f = self.backbone(F.avg_pool2d(x, 2)).relu()
        return SimpleNamespace(logits=self.head(f), feats=f, aux_logits=None)

def toy_batch(rank):
    g = torch.Generator().manual_seed(10 + rank)
    x = torch.randn(1, 3, 16, 16, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    return SimpleNamespace(x_s=x, y_s=y, x_t=x.flip(-1), pl_t=y.flip(-1), depth_s=None, dom_s=None)

def worker(rank, world, port, out):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    from dass_nb.methods.spcl import PrototypeBank, SPCL, SPCLOptions
    from dass_nb.engine import Optim
    P0 = torch.eye(K, C)
    banks = {r: PrototypeBank(K, C, reproduce=r, prototypes=P0).update(*rank_batch(rank)).protos for r in ('code', 'paper')}
    torch.manual_seed(0)                                   # same initial network on both ranks
    m = SPCL(ToySeg(), K, SPCLOptions(temperature=0.1), optim=Optim(lr=0.05), prototypes=P0)
    for _ in range(3): m.train_step(toy_batch(rank))      # each rank its own batches
    torch.save({**banks, 'spcl': m.bank.protos, 'weights': m.state_dict()['model']}, f'{out}/rank{rank}.pt')
    dist.destroy_process_group()

def test_prototypes_all_reduced_over_two_gloo_ranks(tmp_path):
    from dass_nb.methods.spcl import PrototypeBank
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path/f'rank{r}.pt', weights_only=True) for r in range(2))
    (f0, y0), (f1, y1) = rank_batch(0), rank_batch(1)
    for reproduce, absent in (('code', 0.1), ('paper', 1.0)):
        # one process seeing both ranks' pixels computes the same prototypes
        ref = PrototypeBank(K, C, reproduce=reproduce, prototypes=torch.eye(K, C)).update(torch.cat([f0, f1]), torch.cat([y0, y1]))
        torch.testing.assert_close(r0[reproduce], ref.protos); torch.testing.assert_close(r1[reproduce], ref.protos)
        # class 3 was seen on rank 1 only, yet rank 0 moved its prototype as a present class, not as an absent one
        assert not torch.allclose(r0[reproduce][3], torch.eye(K, C)[3] * absent)
    # full SPCL steps: identical prototypes and (DDP) identical weights on both ranks
    torch.testing.assert_close(r0['spcl'], r1['spcl'])
    for k in r0['weights']: torch.testing.assert_close(r0['weights'][k], r1['weights'][k])
