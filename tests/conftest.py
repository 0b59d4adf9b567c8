"Shared fixtures: a tiny synthetic benchmark (GTA5 and Cityscapes layouts) made once per test session."
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

@pytest.fixture(scope='session')
def tiny_bench(tmp_path_factory):
    "A 64x128 synthetic benchmark with a handful of images per split, in the real layouts."
    from dass_nb.data.synthetic import ensure_benchmark
    return ensure_benchmark(tmp_path_factory.mktemp('bench'), domains='gta5,cityscapes', scale=0.02, H=64, W=128)

def tiny_args(data_root, out_dir, **kw):
    "dass_train flags of a seconds-long CPU run on the tiny benchmark."
    args = dict(backbone='deeplab_r18', weights='none', iters=6, batch_size=2, target_batch_size=2, crop='48 96',
                eval_every=3, num_workers=0, data_root=str(data_root), out_dir=str(out_dir))
    args.update(kw)
    out = []
    for k, v in args.items(): out += [f'--{k}', *str(v).split()]
    return out

def kill_at_checkpoint(cmd:list, ckpt:Path, timeout:float=300):
    "Start `cmd` and SIGKILL it as soon as `ckpt` exists: a run interrupted mid-training."
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not ckpt.exists() and p.poll() is None and time.time() - t0 < timeout: time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
