"""Every registered method under DDP: two `torchrun` processes (gloo, CPU), every stage, 2 iterations each.
DDP fails where a step leaves a parameter without gradient, where ranks pass collectives of different shapes, or where
rank-0-only work is not followed by a barrier; one-process tests show none of these."""
import shutil
import json, math, os, subprocess
import pytest
from conftest import ROOT, BIN, tiny_args

import dass_nb.methods  # registers every method
from dass_nb.core import METHODS

MLFA = {'stride': 1, 'translation': {'iters': 2, 'crop': [32, 32], 'ngf': 8, 'n_blocks': 1, 'ndf': 8}}
# the flags a method needs beyond the common ones (None in place of the init checkpoint, filled in by the test)
EXTRA = {'self_training': dict(method_options=None),
         'depth_distribution': dict(source='synthia', num_classes=16, method_options=json.dumps({'st_iters': 2})),
         'mlfa': dict(method_options=json.dumps(MLFA)),
         'spcl': dict(method_options=json.dumps({'warmup_iters': 1., 'contrastive_iters': 1., 'self_training_iters': 1.})),  # fractions of --iters
         'dg_baseline': dict(source='gta5+synthia'), 'ibn': dict(source='gta5+synthia'), 'spc': dict(source='gta5+synthia')}
# option variants whose networks or passes differ from the defaults': the auxiliary head aligned, no density head
VARIANTS = {'adaptsegnet-multi_level': ('adaptsegnet', dict(method_options=json.dumps({'multi_level': True}))),
            'depth_distribution-m1': ('depth_distribution', {**EXTRA['depth_distribution'],
                                      'method_options': json.dumps({'density': False, 'self_train': False, 'spatial_prior': False})})}
RUNS = {**{m: (m, EXTRA.get(m, {})) for m in METHODS}, **VARIANTS}
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}

@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    "The tiny benchmark with the domains every method needs (SYNTHIA for depth distribution and the DG sources)."
    from dass_nb.data.synthetic import ensure_benchmark
    return ensure_benchmark(tmp_path_factory.mktemp('ddp_bench'), domains='gta5,synthia,cityscapes', scale=0.01, H=64, W=128)

def args(bench, out_dir, **kw):
    "`tiny_args` as single flags: `--method_options` keeps its JSON whole."
    opts = kw.pop('method_options', None)
    a = tiny_args(bench, out_dir, iters=2, eval_every=0, device='cpu', **kw)
    return a + (['--method_options', opts] if opts else [])

@pytest.fixture(scope='module')
def init_ckpt(bench, tmp_path_factory):
    "A 2-iteration source-only checkpoint, the start of self-training."
    out = tmp_path_factory.mktemp('ddp_init')/'so'
    r = subprocess.run([str(BIN/'dass_train'), *args(bench, out, method='source_only')], capture_output=True, text=True,
                       timeout=600, cwd=ROOT, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    return out/'train'/'last.pt'

def test_every_method_is_run(): assert set(METHODS) <= {m for m, _ in RUNS.values()}

@pytest.mark.parametrize('run', list(RUNS))
def test_two_processes_every_stage(run, bench, tmp_path, request):
    method, kw = RUNS[run][0], dict(RUNS[run][1])
    if method == 'self_training': kw['method_options'] = json.dumps({'init': str(request.getfixturevalue('init_ckpt'))})
    out = tmp_path/run
    cmd = [str(BIN/'torchrun'), '--standalone', '--nproc_per_node', '2', str(BIN/'dass_train'), *args(bench, out, method=method, **kw)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=ENV)
    assert r.returncode == 0, r.stderr[-5000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['method'] == method and m['world_size'] == 2
    from dass_nb.training import TrainConfig, protocol
    pr = protocol(TrainConfig(**m['config']))
    names = [s['name'] for s in pr['stages']] + pr['other_stages']
    assert sorted(m['stages']) == sorted(names) and all((out/n/'done.json').exists() for n in names), (sorted(m['stages']), names)
    assert all(s['iters'] == 2 and m['stages'][s['name']].get('iters', 2) == 2 for s in pr['stages'])
    assert math.isfinite(m['target_miou']) and 0 <= m['target_miou'] <= 100
    assert r.stdout.count('mIoU') == 1, "only rank 0 reports"
    shutil.rmtree(out)   # half a gigabyte per run otherwise stays until the session ends
