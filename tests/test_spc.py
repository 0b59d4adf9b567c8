"SPC and the DG baselines end to end: the CLI on two sources with the DG table, exact resume after a kill, DDP-synchronised bases."
import json, math, socket, subprocess, sys
from pathlib import Path
from types import SimpleNamespace
import pytest, torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import ROOT, tiny_args, kill_at_checkpoint

CLI = [sys.executable, '-c', 'from dass_nb.training import train_cli; train_cli()']

@pytest.fixture(scope='module')
def dg_bench(tmp_path_factory):
    "A tiny benchmark with two sources (GTA5, SYNTHIA) and an unseen target (Cityscapes)."
    from dass_nb.data.synthetic import ensure_benchmark
    return ensure_benchmark(tmp_path_factory.mktemp('dg'), domains='gta5,synthia,cityscapes', scale=0.02, H=64, W=128)

def dg_args(bench, out_dir, **kw):
    return tiny_args(bench, out_dir, **{'method': 'spc', 'source': 'gta5+synthia', 'eval_targets': 'cityscapes,gta5,synthia',
                                        'eval_every': 0, **kw})

def run_cli(args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, cwd=ROOT)

def test_cli_two_sources_dg_table(dg_bench, tmp_path):
    from dass_nb.analysis import dg_table
    r = run_cli(dg_args(dg_bench, tmp_path/'run'))
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert (m['method'], m['source']) == ('spc', 'gta5+synthia') and set(m['eval']) == {'cityscapes', 'gta5', 'synthia'}
    t = dg_table(m)
    assert list(t.columns) == ['C', 'Avg-T', 'G', 'S', 'Avg-S', 'Avg-A'] and t.index[0] == ('spc', 'G+S')
    row = t.iloc[0]
    assert all(math.isfinite(v) and 0 <= v <= 100 for v in row)
    assert abs(row['Avg-S'] - (m['eval']['gta5']['mIoU'] + m['eval']['synthia']['mIoU']) / 2) < 0.01
    w = torch.load(m['final_checkpoint'], weights_only=True)['method']['model']
    assert w['classifier.bases'].shape == (19, 2, 256) and w['stage_hooks.layer1.base_sigma'].shape == (2, 64)
    assert all(not torch.allclose(s, torch.ones(64)) for s in w['stage_hooks.layer0.base_sigma'])   # each source moved its own base
    log = [json.loads(l) for l in (tmp_path/'run'/'train'/'metrics.jsonl').read_text().splitlines()]
    assert {'seg', 'var', 'dis'} <= set(log[-1])

@pytest.mark.parametrize('method,hook', [('ibn', 'stage_hooks.layer2.norm.weight'), ('dg_baseline', None)])
def test_cli_dg_baselines(dg_bench, tmp_path, method, hook):
    r = run_cli(dg_args(dg_bench, tmp_path/method, method=method, iters=2, eval_targets='cityscapes,gta5'))
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/method/'metrics.json').read_text())
    w = torch.load(m['final_checkpoint'], weights_only=True)['method']['model']
    assert not any(k.startswith('stage_hooks.') for k in w) if hook is None else hook in w
    assert 0 <= m['eval']['gta5']['mIoU'] <= 100

def test_killed_spc_run_resumes_to_the_same_result(dg_bench, tmp_path):
    args = lambda d: dg_args(dg_bench, d, iters=8, eval_every=2, eval_targets='cityscapes')
    assert run_cli(args(tmp_path/'full')).returncode == 0
    last = tmp_path/'cut'/'train'/'last.pt'
    kill_at_checkpoint([*CLI, *args(tmp_path/'cut')], last)
    assert not (tmp_path/'cut'/'metrics.json').exists(), "the run finished before it could be killed"
    assert torch.load(last, weights_only=True)['iter'] < 8
    r = run_cli(args(tmp_path/'cut'))
    assert r.returncode == 0, r.stderr[-3000:]
    w = [torch.load(json.loads((tmp_path/d/'metrics.json').read_text())['final_checkpoint'], weights_only=True)['method']['model']
         for d in ('full', 'cut')]
    assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])   # weights, style bases and semantic bases

def free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def rank_batch(rank):
    "Rank 0 holds images of domain 0 only, rank 1 of both domains."
    g = torch.Generator().manual_seed(rank)
    doms = [0, 0] if rank == 0 else [0, 1]
    x = torch.randn(2, 3, 32, 32, generator=g) * (1 + rank) + rank
    return SimpleNamespace(x_s=x, y_s=torch.randint(0, 4, (2, 32, 32), generator=g), x_t=None, pl_t=None, depth_s=None,
                           dom_s=torch.tensor(doms))

def worker(rank, world, port, out):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    from dass_nb.methods.spc import StyleProjection, SPC, SPCOptions
    from dass_nb.models import MODELS
    from dass_nb.engine import Optim
    b = rank_batch(rank)
    torch.manual_seed(0)
    sp = StyleProjection(3, 2).update(b.x_s, b.dom_s)
    torch.manual_seed(0)
    m = SPC(SPC.network(lambda: MODELS.create('deeplab_r18', num_classes=4, weights=None), SPCOptions(), 4, 2), 4, optim=Optim(lr=1e-3))
    for _ in range(2): m.train_step(b)
    torch.save({'mu': sp.base_mu, 'sigma': sp.base_sigma, 'model': m.state_dict()['model']}, f'{out}/rank{rank}.pt')
    dist.destroy_process_group()

def test_bases_all_reduced_over_two_gloo_ranks(tmp_path):
    from dass_nb.methods.spc import StyleProjection
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path/f'rank{r}.pt', weights_only=True) for r in range(2))
    b0, b1 = rank_batch(0), rank_batch(1)
    torch.manual_seed(0)
    ref = StyleProjection(3, 2).update(torch.cat([b0.x_s, b1.x_s]), torch.cat([b0.dom_s, b1.dom_s]))   # one process, all images
    for r in (r0, r1): torch.testing.assert_close(r['mu'], ref.base_mu); torch.testing.assert_close(r['sigma'], ref.base_sigma)
    assert not torch.allclose(ref.base_sigma[1], torch.ones(3))   # domain 1 (only on rank 1) moved rank 0's base too
    shared = [k for k in r0['model'] if 'running_' not in k and 'num_batches' not in k]   # DDP keeps BN statistics per rank
    assert {'classifier.bases', 'stage_hooks.layer0.base_mu'} <= set(shared)
    for k in shared: torch.testing.assert_close(r0['model'][k], r1['model'][k])   # weights and all bases agree
