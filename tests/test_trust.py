"""Trustworthy runs (issue 17): checkpoints are read as tensors and plain data only, a resumed run keeps its
configuration unless a change is asked for (and then records it), and a damaged newest checkpoint costs one
checkpoint's iterations, not the run."""
import json, logging, os, random, subprocess
import pytest, torch
from conftest import ROOT, BIN, tiny_args
from dass_nb.core import CheckpointError, UnsafeCheckpoint, get_logger, read_jsonl
from dass_nb.runs import _tiny_config, load_model
from dass_nb.training import train, train_cli
from dass_nb.evaluation import eval_cli
from dass_nb.models import MODELS

class Payload:
    "Unpickled, it runs a shell command that creates `marker`: what a malicious checkpoint would do."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))

def cli(tool, *args):
    "`.venv/bin/<tool>` on this checkout (PYTHONPATH: the code under test, not the installed copy)."
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    return subprocess.run([str(BIN/tool), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)

def last_line(r): return r.stderr.strip().splitlines()[-1]

@pytest.fixture
def evil_run(tiny_bench, tmp_path):
    "A finished run's folder (config.json, metrics.json) whose stage checkpoint holds a `Payload`; and the payload's marker."
    run, marker = tmp_path/'runs'/'evil', tmp_path/'payload-ran'
    cfg = _tiny_config('source_only', tiny_bench, run, iters=2)
    (run/'train').mkdir(parents=True)
    cfg.save(run/'config.json')
    torch.save({'iter': 2, 'method': {'model': {}}, 'x': Payload(marker)}, run/'train'/'last.pt')
    (run/'metrics.json').write_text(json.dumps({'final_checkpoint': str(run/'train'/'last.pt'), 'config': cfg.to_dict()}))
    return cfg, run/'train'/'last.pt', marker

def test_malicious_checkpoint_is_refused_everywhere(evil_run, tiny_bench):
    cfg, evil, marker = evil_run
    r = cli('dass_eval', evil, '--data_root', tiny_bench, '--device', 'cpu')                     # dass_eval
    assert r.returncode != 0 and f"checkpoint '{evil}' refused: it holds a pickled posix.system" in r.stderr, r.stderr[-2000:]
    print('dass_eval:', last_line(r))
    with pytest.raises(UnsafeCheckpoint, match='refused') as e: train(cfg)                      # resume
    assert str(evil) in str(e.value); print('resume:', e.value)
    for p in (evil, evil.parent.parent):   # a checkpoint; a run folder, as the analysis notebooks load each run (`load_model(run_dir)`)
        with pytest.raises(UnsafeCheckpoint) as e: load_model(p)
        assert str(evil) in str(e.value); print('load_model:', e.value)
    assert not marker.exists(), "the payload ran"

def test_a_file_that_is_not_a_checkpoint_says_so(tiny_bench, tmp_path):
    (tmp_path/'notes.pt').write_text('not a checkpoint\n'); (tmp_path/'noise.pt').write_bytes(random.Random(0).randbytes(4096))
    expected = "is not a dass_nb checkpoint (a torch.save file of tensors and plain data)"
    with pytest.raises(CheckpointError) as e: eval_cli(str(tmp_path/'notes.pt'), backbone='deeplab_r18', num_classes=19, device='cpu')
    assert str(e.value) == f"checkpoint '{tmp_path/'notes.pt'}' {expected}: it starts with b'not '"; print('dass_eval:', e.value)
    for name in ('notes.pt', 'noise.pt'):
        with pytest.raises(CheckpointError, match=expected.replace('(', r'\(').replace(')', r'\)')) as e: load_model(tmp_path/name)
        assert '\n' not in str(e.value); print('load_model:', e.value)

def test_resuming_with_another_config_stops_unless_allowed(tiny_bench, tmp_path, capsys):
    out = tmp_path/'run'
    train(_tiny_config('source_only', tiny_bench, out, iters=2, log_every=1))
    for f in ('train/done.json', 'metrics.json'): (out/f).unlink()                  # interrupted after iteration 2
    before = (out/'config.json').read_text()
    flags = tiny_args(tiny_bench, out, iters=4, crop='64 128', lr=0.01, eval_every=0, batch_size=1, target_batch_size=1, log_every=1)
    with pytest.raises(SystemExit) as e: train_cli(flags)                           # dass_train: the message alone, exit 1
    err = capsys.readouterr().err                                                  # the first run's progress, then the message
    msg = err[err.index('dass_train: run folder'):]
    assert e.value.code == 1 and 'Traceback' not in msg, msg
    assert all(f"  {d}\n" in msg for d in ('crop: [48, 96] -> [64, 128]', 'iters: 2 -> 4', 'lr: 0.001 -> 0.01')), msg
    assert msg.count(' -> ') == 3 and 'allow_changes' in msg and (out/'config.json').read_text() == before
    assert not (out/'config_changes.jsonl').exists(); print(msg)
    train_cli(flags + ['--allow_changes'])
    rec = read_jsonl(out/'config_changes.jsonl')
    assert len(rec) == 1 and rec[0]['progress'] == {'train': 2}
    assert rec[0]['changes'] == {'crop': [[48, 96], [64, 128]], 'iters': [2, 4], 'lr': [0.001, 0.01]}
    assert (rec[0]['previous']['iters'], rec[0]['config']['iters'], json.loads((out/'config.json').read_text())['iters']) == (2, 4, 4)
    m = json.loads((out/'metrics.json').read_text())
    assert m['config_changes'][0]['changes'] == rec[0]['changes'] and m['config']['crop'] == [64, 128]
    assert [x['iter'] for x in read_jsonl(out/'train'/'metrics.jsonl') if 'seg' in x] == [1, 2, 3, 4]   # resumed at 2

class Messages(logging.Handler):
    def __init__(self): super().__init__(); self.msgs = []
    def emit(self, r): self.msgs.append(r.getMessage())

def test_damaged_newest_checkpoint_falls_back_and_finished_stages_stay(tiny_bench, tmp_path):
    torch.manual_seed(0)
    torch.save({'model': MODELS.create('deeplab_r18', num_classes=19, weights=None).state_dict()}, tmp_path/'init.pt')
    cfg = _tiny_config('self_training', tiny_bench, tmp_path/'st', iters=4, log_every=1,
                       method_options={'init': str(tmp_path/'init.pt')}).update(eval_every=2)
    m1 = train(cfg)
    st = tmp_path/'st'
    assert sorted(p.name for p in (st/'train').glob('last*.pt')) == ['last-2.pt', 'last.pt']
    w1, log1 = torch.load(st/'train'/'last.pt', weights_only=True)['method']['model'], read_jsonl(st/'train'/'metrics.jsonl')
    finished = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (st/'pseudo_labels').rglob('*') if p.is_file()}
    for f in ('train/done.json', 'metrics.json'): (st/f).unlink()                   # interrupted after iteration 4 ...
    full = (st/'train'/'last.pt').read_bytes()
    (st/'train'/'last.pt').write_bytes(full[:len(full) // 3])                        # ... with its newest checkpoint cut short
    logs = Messages(); get_logger().addHandler(logs)
    try: m2 = train(cfg)
    finally: get_logger().removeHandler(logs)
    warned = [m for m in logs.msgs if 'damaged or truncated' in m or 'trained again' in m]
    assert len(warned) == 2 and str(st/'train'/'last.pt') in warned[0], logs.msgs
    assert warned[1] == 'resumed from the checkpoint before last.pt: 2 iterations (2 to 4) are trained again'
    print('\n'.join(warned))
    w2 = torch.load(st/'train'/'last.pt', weights_only=True)['method']['model']
    assert all(torch.equal(w1[k], w2[k]) for k in w1) and m1['target_miou'] == m2['target_miou']   # as if nothing had happened
    strip = lambda log: [{k: v for k, v in r.items() if k != 'seconds'} for r in log]
    assert strip(read_jsonl(st/'train'/'metrics.jsonl')) == strip(log1)
    for f in ('train/done.json', 'metrics.json'): (st/f).unlink()
    for p in (st/'train').glob('last*.pt'): p.write_bytes(b'PK\x03\x04')             # nothing readable left: a clear stop
    with pytest.raises(CheckpointError, match=r"no readable checkpoint of 'train' in .* \(last.pt, last-2.pt\)"): train(cfg)
    assert finished == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (st/'pseudo_labels').rglob('*') if p.is_file()}
