"Training end to end: the CLI, papermill parameter injection, exact resume after a kill, DDP with torchrun, bad input."
import json, os, re, subprocess, sys
from pathlib import Path
import pytest, torch
from conftest import ROOT, BIN, tiny_args, kill_at_checkpoint

def dass_train(args, **kw):
    return subprocess.run([str(BIN/'dass_train'), *args], capture_output=True, text=True, timeout=600, cwd=ROOT, **kw)

def final_weights(out_dir):
    m = json.loads((Path(out_dir)/'metrics.json').read_text())
    return m, torch.load(m['final_checkpoint'], weights_only=True)['method']['model']

def test_cli_trains_and_writes_metrics(tiny_bench, tmp_path):
    r = dass_train(tiny_args(tiny_bench, tmp_path/'run', method='adaptsegnet'))
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert (m['method'], m['source'], m['target'], m['iters'], m['world_size']) == ('adaptsegnet', 'gta5', 'cityscapes', 6, 1)
    assert 0 <= m['target_miou'] <= 100 and m['best_target_miou'] >= m['target_miou']
    assert len(m['per_class_iou']) == 19 and 'road' in m['per_class_iou']
    log = [json.loads(l) for l in (tmp_path/'run'/'train'/'metrics.jsonl').read_text().splitlines()]
    losses = [r for r in log if 'seg' in r]
    assert losses and {'seg', 'adv', 'd0'} <= set(losses[0]) and any('val_mIoU' in r for r in log)
    assert 'adaptsegnet gta5 -> cityscapes: mIoU' in r.stdout

def test_killed_run_resumes_to_the_same_result(tiny_bench, tmp_path):
    args = lambda d: tiny_args(tiny_bench, d, method='advent', iters=10, eval_every=3)
    assert dass_train(args(tmp_path/'full')).returncode == 0
    last = tmp_path/'cut'/'train'/'last.pt'
    kill_at_checkpoint([str(BIN/'dass_train'), *args(tmp_path/'cut')], last)
    assert not (tmp_path/'cut'/'metrics.json').exists(), "the run finished before it could be killed"
    assert torch.load(last, weights_only=True)['iter'] < 10
    r = dass_train(args(tmp_path/'cut'))
    assert r.returncode == 0, r.stderr[-3000:]
    (m1, w1), (m2, w2) = final_weights(tmp_path/'full'), final_weights(tmp_path/'cut')
    assert m1['target_miou'] == m2['target_miou'] and m1['per_class_iou'] == m2['per_class_iou']
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    l1 = (tmp_path/'full'/'train'/'metrics.jsonl').read_text().splitlines()
    l2 = (tmp_path/'cut'/'train'/'metrics.jsonl').read_text().splitlines()
    strip = lambda ls: [{k: v for k, v in json.loads(l).items() if k != 'seconds'} for l in ls]
    assert strip(l1) == strip(l2)

def test_torchrun_two_processes_gloo(tiny_bench, tmp_path):
    cmd = [str(BIN/'torchrun'), '--standalone', '--nproc_per_node', '2', str(BIN/'dass_train'),
           *tiny_args(tiny_bench, tmp_path/'ddp', method='adaptsegnet', batch_size=1, target_batch_size=1)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-4000:]
    m = json.loads((tmp_path/'ddp'/'metrics.json').read_text())
    assert m['world_size'] == 2 and 0 <= m['target_miou'] <= 100
    assert r.stdout.count('mIoU') == 1, "only rank 0 reports"

def test_torchrun_c10d_rendezvous(tiny_bench, tmp_path):
    "The multi-node launch (c10d rendezvous at an endpoint, as scripts/slurm_train.sh does), on one node with 2 processes."
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    cmd = [str(BIN/'torchrun'), '--nnodes', '1', '--nproc_per_node', '2', '--rdzv_backend', 'c10d',
           '--rdzv_endpoint', f'127.0.0.1:{port}', '--rdzv_id', 'test', str(BIN/'dass_train'),
           *tiny_args(tiny_bench, tmp_path/'c10d', method='source_only', batch_size=1)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-4000:]
    assert json.loads((tmp_path/'c10d'/'metrics.json').read_text())['world_size'] == 2

def test_slurm_script():
    "scripts/slurm_train.sh is valid bash and launches one torchrun per node with the c10d rendezvous."
    script = ROOT/'scripts'/'slurm_train.sh'
    assert subprocess.run(['bash', '-n', str(script)]).returncode == 0
    text = script.read_text()
    assert all(k in text for k in ('srun', 'torchrun', '--rdzv_backend c10d', '--nnodes "$SLURM_JOB_NUM_NODES"', 'dass_train --recipe'))

def test_papermill_injects_parameters(tiny_bench, tmp_path):
    pm = pytest.importorskip('papermill')
    params = dict(recipe='minent-cpu', iters=3, eval_every=0, backbone='deeplab_r18', weights='none', batch_size=2,
                  target_batch_size=2, crop_h=48, crop_w=96, num_workers=0, data_root=str(tiny_bench),
                  out_dir=str(tmp_path/'pm'), method_options={'lambda_ent': 0.01})
    env = {**{k: v for k, v in os.environ.items() if k != 'IN_TEST'}, 'TQDM_MININTERVAL': '30'}   # as `make train` runs it
    out = tmp_path/'out.ipynb'
    r = subprocess.run([str(BIN/'papermill'), str(ROOT/'nbs'/'train.ipynb'), str(out), '--cwd', str(ROOT/'nbs'),
                        '-y', json.dumps(params), '--log-output'], capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    assert re.search(r'dass_nb INFO train 3/3 seg [\d.]+ ent [\d.]+ \| [\d.]+ s/it, ETA 0:00:00', r.stderr), r.stderr[-4000:]   # the progress line
    nb = json.loads(out.read_text())
    injected = [c for c in nb['cells'] if 'injected-parameters' in c['metadata'].get('tags', [])]
    assert len(injected) == 1 and "recipe = \"minent-cpu\"" in ''.join(injected[0]['source'])
    m = json.loads((tmp_path/'pm'/'metrics.json').read_text())
    assert (m['method'], m['iters'], m['config']['method_options'], m['config']['recipe']) == ('minent', 3, {'multi_level': False, 'lambda_ent': 0.01}, 'minent-cpu')
    assert (tmp_path/'pm'/'per_class_iou.csv').exists() and (tmp_path/'pm'/'qualitative.png').exists()

@pytest.mark.parametrize('flags, message', [
    (['--method', 'spcll'], "method='spcll': valid methods are"),
    (['--num_classes', '20'], 'num_classes=20: valid values are 19, 16 and 7'),
    (['--source', 'gta6'], "source='gta6': valid datasets are"),
    (['--method_options', '{"lamda": 1}', '--method', 'advent'], "unknown option(s) ['lamda']"),
])
def test_bad_parameters_are_named(tiny_bench, tmp_path, flags, message, capsys, monkeypatch):
    from dass_nb.training import train_cli
    monkeypatch.delenv('DASS_DEBUG', raising=False)
    with pytest.raises(SystemExit) as e: train_cli(tiny_args(tiny_bench, tmp_path/'bad') + flags)
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.startswith('dass_train: ') and message in err and 'Traceback' not in err, err
    assert not (tmp_path/'bad').exists(), "nothing is written before the parameters are valid"

def test_missing_data_names_the_layout(tmp_path):
    r = dass_train(tiny_args(tmp_path/'nowhere', tmp_path/'bad'))
    assert r.returncode == 1
    assert 'gta5' in r.stderr and 'images/' in r.stderr and 'data_prep' in r.stderr, r.stderr[-2000:]
    assert 'dass_train: gta5: folder images not found' in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert r.stderr.endswith('\n(--debug or DASS_DEBUG=1 shows the traceback)\n'), r.stderr[-2000:]

def test_recipe_then_flags_then_print_config(tiny_bench, tmp_path):
    "defaults < recipe < explicit flags, method options merged option by option; --print_config trains nothing."
    r = dass_train(['--recipe', 'spcl-gta5-cityscapes', '--iters', '7', '--method_options', '{"cap": 0.8}',
                    '--out_dir', str(tmp_path/'p'), '--print_config'])
    assert r.returncode == 0, r.stderr[-2000:]
    c = json.loads(r.stdout)
    assert (c['recipe'], c['backbone'], c['iters'], c['lr'], c['bn']) == ('spcl-gta5-cityscapes', 'deeplabv2_r101', 7, 2.5e-4, 'frozen')
    assert (c['method_options']['cap'], c['method_options']['lambda_cl']) == (0.8, 1.0)
    assert [(s['name'], s['iters']) for s in c['protocol']['stages']] == [('warmup', 7), ('contrastive', 7), ('self_training', 4)]
    assert not (tmp_path/'p').exists()
    r = dass_train(['--recipe', 'spcl-gpu', '--print_config'])
    assert r.returncode != 0 and 'unknown recipe' in r.stderr and 'spcl-gta5-cityscapes' in r.stderr
