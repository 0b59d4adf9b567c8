"MLFA and its translation stage end to end: the translated set on disk, the CLI run, resume of the CycleGAN, bad input."
import json, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from conftest import ROOT, tiny_args

from dass_nb.core import METHODS
from dass_nb.data import get_dataset
from dass_nb.training import TrainConfig, Run, train
from dass_nb.engine import Optim, fit
from dass_nb.methods.translation import translation_stage, translated_source, CycleGAN, TranslationOptions, gan_batches
from dass_nb.methods.mlfa import MLFA, MLFAOptions

TINY_GAN = dict(ngf=4, n_blocks=1, ndf=4, crop=(32, 64))

def run_for(bench, out, **kw):
    c = dict(backbone='deeplab_r18', weights=None, iters=2, batch_size=1, target_batch_size=1, crop=(48, 96),
             eval_every=0, num_workers=0, data_root=str(bench), out_dir=str(out))
    return Run(TrainConfig(**{**c, **kw}))

def test_registered(): assert METHODS.get('mlfa') is MLFA

def test_translated_set_mirrors_the_source(tiny_bench, tmp_path):
    run = run_for(tiny_bench, tmp_path/'run')
    d = tmp_path/'run'/'translation'; d.mkdir()
    res = translation_stage(TranslationOptions(iters=3, **TINY_GAN), run.kit(), d)
    (d/'done.json').write_text(json.dumps(res))
    src, out = Path(tiny_bench)/'gta5', d/'translated'
    names = sorted(p.name for p in (src/'images').iterdir())
    assert res['images'] == len(names) > 0 and translated_source(d) == f'gta5:{out.resolve()}'
    assert sorted(p.name for p in (out/'images').iterdir()) == names
    assert all((out/'labels'/n).read_bytes() == (src/'labels'/n).read_bytes() for n in names)   # labels unchanged
    ds_src, ds_tr = get_dataset('gta5', 'all', data_dir=tiny_bench), get_dataset(res['spec'], 'all')
    assert ds_tr.names == ds_src.names and len(ds_tr) == len(ds_src)
    a, b = ds_src[0], ds_tr[0]
    assert a['image'].shape == b['image'].shape and torch.equal(a['label'], b['label']) and not torch.equal(a['image'], b['image'])
    with Image.open(d/'samples.png') as im: assert im.size[0] > im.size[1] // 2 > 0                 # a grid was drawn
    log = [json.loads(l) for l in (d/'cyclegan'/'metrics.jsonl').read_text().splitlines()]
    assert log[-1]['iter'] == 3 and {'g_st', 'g_ts', 'cyc', 'idt', 'd_s', 'd_t'} <= set(log[-1])

def test_cyclegan_resumes_exactly(tiny_bench, tmp_path):
    "A translation stage stopped after 2 of 4 iterations and continued gives the generator of an unbroken run."
    full, cut = run_for(tiny_bench, tmp_path/'a'), run_for(tiny_bench, tmp_path/'b')
    for r in (full, cut): (r.out_dir/'translation').mkdir()
    o = TranslationOptions(iters=4, **TINY_GAN)
    translation_stage(o, full.kit(), full.out_dir/'translation')
    gan = CycleGAN(o, device='cpu', seed=cut.cfg.seed)
    class Stop(Exception): pass
    step = gan.step; calls = []
    def dying(b):
        calls.append(1)
        if len(calls) == 3: raise Stop
        return step(b)
    gan.step = dying                                                    # the step `fit` calls
    with pytest.raises(Stop):
        fit(gan, gan_batches(cut.data, 'gta5', o, 0), gan_batches(cut.data, 'cityscapes', o, 1), 4, cut.out_dir/'translation'/'cyclegan',
            ckpt_every=1, lr_power=1.0, progress=False)
    translation_stage(o, cut.kit(), cut.out_dir/'translation')           # resumes from iteration 2
    wa = torch.load(full.out_dir/'translation'/'cyclegan'/'last.pt', weights_only=True)['method']['model']
    wb = torch.load(cut.out_dir/'translation'/'cyclegan'/'last.pt', weights_only=True)['method']['model']
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ia = np.asarray(Image.open(next((full.out_dir/'translation'/'translated'/'images').iterdir())))
    ib = np.asarray(Image.open(next((cut.out_dir/'translation'/'translated'/'images').iterdir())))
    assert np.array_equal(ia, ib)

def test_cli_mlfa_writes_metrics(tiny_bench, tmp_path):
    opts = json.dumps({'translation': {**TINY_GAN, 'iters': 2}, 'dim': 8, 'stride': 1})
    args = tiny_args(tiny_bench, tmp_path/'run', method='mlfa', iters=2, eval_every=0)
    code = 'import sys; from dass_nb.training import train_cli; train_cli(sys.argv[1:])'
    r = subprocess.run([sys.executable, '-c', code, *args, '--method_options', opts], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert (m['method'], m['iters']) == ('mlfa', 2) and 0 <= m['target_miou'] <= 100 and len(m['per_class_iou']) == 19
    assert list(m['stages']) == ['translation', 'train'] and m['stages']['translation']['images'] > 0
    log = [json.loads(l) for l in (tmp_path/'run'/'train'/'metrics.jsonl').read_text().splitlines()]
    assert {'seg', 'adv', 'd'} <= set(log[0])
    assert 'mlfa gta5 -> cityscapes: mIoU' in r.stdout

def test_bad_options_are_named(tiny_bench, tmp_path):
    with pytest.raises(ValueError, match="translation='gpu': expected the fields of TranslationOptions"):
        train(TrainConfig(**{**run_for(tiny_bench, tmp_path/'x').cfg.to_dict(), 'method': 'mlfa', 'method_options': {'translation': 'gpu'}}))
    with pytest.raises(ValueError, match="single source"):
        translation_stage(TranslationOptions(), run_for(tiny_bench, tmp_path/'y', source='gta5+gta5').kit(), tmp_path/'y')
    with pytest.raises(FileNotFoundError, match='run the translation stage first'):
        train(TrainConfig(**{**run_for(tiny_bench, tmp_path/'z').cfg.to_dict(), 'method': 'mlfa', 'stage': 'train'}))

def _free_port()->int:
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _ddp_worker(rank, world, port, out):
    import torch.distributed as dist
    from types import SimpleNamespace
    from dass_nb.core import MODELS
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    g = torch.Generator().manual_seed(rank)                    # each rank its own images
    x = torch.rand(1, 3, 128, 256, generator=g)
    b = SimpleNamespace(x_s=x, y_s=(x[:, 0] > 0.5).long(), x_t=x.flip(-1), pl_t=None, depth_s=None, dom_s=None)
    gan = CycleGAN(TranslationOptions(ngf=4, n_blocks=1, ndf=4, n_layers=2, lambda_id=5., pool_size=0))   # same seed: same initial weights
    for _ in range(2): gan.train_step(SimpleNamespace(x_s=x[..., :64, :64], x_t=x[..., 64:, :64]))
    torch.manual_seed(0)
    m = MLFA(MODELS.create('deeplab_r18', num_classes=3, weights=None), 3, MLFAOptions(dim=8), optim=Optim(lr=0.01))
    for _ in range(2): m.train_step(b)
    torch.save({'gan': gan.model.state_dict(), 'seg': m.state_dict()['model'], 'disc': m.adv.discs.state_dict()}, f'{out}/rank{rank}.pt')
    dist.destroy_process_group()

def test_cyclegan_and_mlfa_stay_in_sync_under_ddp(tmp_path):
    "Two gloo ranks with different images end with identical generators, discriminators and segmentation weights."
    import torch.multiprocessing as mp
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path/f'rank{r}.pt', weights_only=True) for r in range(2))
    for part in ('gan', 'seg', 'disc'):
        for k in r0[part]:
            if 'running_' in k or 'num_batches' in k: continue    # BN statistics stay rank-local (broadcast_buffers=False)
            torch.testing.assert_close(r0[part][k], r1[part][k], msg=lambda m: f'{part}.{k}: {m}')
    init = CycleGAN(TranslationOptions(ngf=4, n_blocks=1, ndf=4, n_layers=2)).model.state_dict()
    assert any(not torch.equal(init[k], r0['gan'][k]) for k in init)            # and they did train
