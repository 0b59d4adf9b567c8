"""`make bench` on a GPU (issue 16): the paper recipes at their own geometry and per-GPU batch.

  step      each recipe's training stages (the method of that stage, its batch and input sizes): time per iteration
            against the bare forward+backward+SGD of the passes the stage needs (source; target where it trains on
            it), images/s and peak GPU memory, in fp32 (the recipes') and bf16
  loader    the recipe's source and target loaders (full-size synthetic PNGs, the recipe's `Input`, default workers):
            images/s as a ratio to what the step consumes
  eval      `evaluate` over full-size 2048x1024 Cityscapes-layout PNGs at the recipe's evaluation input, as a ratio to
            a bare forward of the same batches; the pseudo-label pass (thresholds + PNGs) in images/s
  estimate  each recipe's whole wall time on its own GPU count, from the protocol (`protocol(cfg)`), the step times
            and the pass rates above, with the real datasets' sizes
Targets: step ratio <= 1.10; loader >= 1.5x the step's images/s; eval >= 0.9 of bare forward; SPCL's contrastive
step at 2+2 >= 8 it/s in bf16 on one H200.
Without CUDA it prints one line (the CPU figures are the other benches'); `--smoke` runs everything on the CPU at
toy sizes with a small network, to test this script.
Run: PYTHONPATH=. python bench/bench_cuda.py [--recipes a,b] [--smoke]"""
import argparse, contextlib, statistics, sys, tempfile, time
from functools import partial
from pathlib import Path
import torch, torch.nn.functional as F

from common import timeit
from dass_nb.core import MODELS, RECIPES, seed_everything
from dass_nb.data import get_dataset, eval_input, InfiniteLoader, default_workers, to_device
from dass_nb.engine import AMP, DABatch, Optim, evaluate, set_bn_regime, PASS_BATCH
from dass_nb.methods import Feed
from dass_nb.methods.adaptsegnet import AdaptSegNetOptions
from dass_nb.methods.self_training import make_pseudo_labels
from dass_nb.training import RunData, options, process_batch, protocol, resolve_config, stage_config
from dass_nb.core import METHODS
import dass_nb.methods

RECIPES_DEFAULT = ('source_only-gta5-cityscapes', 'adaptsegnet-gta5-cityscapes', 'advent-gta5-cityscapes', 'minent-gta5-cityscapes',
                   'spcl-gta5-cityscapes', 'depth-synthia-cityscapes-16', 'spc-gta5+synthia', 'mlfa-gta5-cityscapes')
# images of the real datasets' splits, for the estimates (METHODS §1.9, §2, §3; the datasets' own counts)
SPLIT_SIZES = {'gta5': 24966, 'synthia': 9400, 'cityscapes': 2975, 'cityscapes/val': 500, 'mapillary/val': 2000, 'bdd100k/val': 1000}
SMOKE = dict(backbone='deeplab_r18', size=(128, 256))   # MLFA's discriminator needs a 32-pixel feature grid

def stage_method(cfg, stage:str):
    "The method class and options a recipe's training stage trains with (SPCL's and the self-training stages differ)."
    o = options(cfg)
    if cfg.method == 'spcl' and stage == 'warmup':
        return METHODS.get('adaptsegnet'), AdaptSegNetOptions(lambda_adv=o.lambda_adv, src_temperature=o.src_temperature)
    if stage in ('self_training', 'self_train'): return METHODS.get('self_training'), None
    return METHODS.get(cfg.method), o

def sizes(cfg, smoke:bool)->tuple:
    "(source, target) training image sizes of `cfg` (toy sizes under --smoke)."
    d = RunData(cfg, None)
    return (SMOKE['size'],) * 2 if smoke else (d.input('source').size(), d.input('target').size())

def fake_batch(cls, cfg, feed:Feed, bs:int, tbs:int, n_dom:int, src, tgt, K:int, dev)->DABatch:
    "Random tensors shaped as the stage's batches: what the loaders would deliver, already on the device."
    g = torch.Generator(device='cpu').manual_seed(0)
    img = lambda n, hw: torch.randn(n, 3, *hw, generator=g).to(dev)
    lab = lambda n, hw: torch.randint(0, K, (n, *hw), generator=g).to(dev)
    if feed is Feed.PSEUDO: return DABatch(x_s=img(tbs, tgt), y_s=lab(tbs, tgt))
    n = bs * n_dom
    b = DABatch(x_s=img(n, src), y_s=lab(n, src), dom_s=torch.arange(n, device=dev) % n_dom if n_dom > 1 else None)
    if cls.__name__ == 'DepthDist': b.depth_s = (torch.rand(n, 1, *src, generator=g) * 80 + 1).to(dev)
    if feed in (Feed.SOURCE_TARGET, Feed.SOURCE_PSEUDO): b.x_t = img(tbs, tgt)
    if feed is Feed.SOURCE_PSEUDO: b.pl_t = lab(tbs, tgt)
    return b

def bare_step(model, opt, b:DABatch, amp:AMP):
    "The passes the stage needs and nothing else: forward, a plain loss, backward, SGD."
    opt.zero_grad(set_to_none=True)
    for x, y in ((b.x_s, b.y_s), (b.x_t, None)):
        if x is None: continue
        with amp.autocast(): out = model(x)
        logits = F.interpolate(out.logits.float(), x.shape[-2:], mode='bilinear', align_corners=True)
        (F.cross_entropy(logits, y, ignore_index=255) if y is not None else logits.mean()).backward()
    opt.step()

def peak_gib(fn)->float:
    "Peak GPU memory of `fn()` in GiB (0 on the CPU)."
    if not torch.cuda.is_available(): fn(); return 0.
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); fn(); torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30

def bench_stage(cfg, s:dict, amp_mode, dev, smoke:bool, n:int, batch:tuple|None=None)->dict:
    "Step and bare-passes time of protocol stage `s` of `cfg`, at the per-GPU batch of the recipe's world size."
    c = stage_config(cfg, s['name'])
    cls, opts = stage_method(c, s['name'])
    feed = Feed.PSEUDO if s['batch_source'] == 0 else Feed.SOURCE_PSEUDO if s['name'] == 'contrastive' else (cls.feed if isinstance(cls.feed, Feed) else Feed.SOURCE_TARGET)
    bs, tbs = batch or (process_batch(c, c.batch_size, c.world_size), process_batch(c, c.target_batch_size, c.world_size))
    n_dom, K = len(c.source.split('+')), c.num_classes
    create = partial(MODELS.create, SMOKE['backbone'] if smoke else c.backbone, num_classes=K, weights=None, **({} if smoke else c.model_options))
    net = lambda: set_bn_regime(cls.network(create, opts or cls.Options(), K, n_dom), c.bn).to(dev)
    src, tgt = sizes(c, smoke)
    b = fake_batch(cls, c, feed, bs, tbs, n_dom, src, tgt, K, dev)
    seed_everything(0, deterministic=False)
    m = cls(net(), K, opts, optim=Optim(c.optimizer, c.lr, c.momentum, c.weight_decay, c.head_mult), device=dev, amp=amp_mode)
    mem = peak_gib(lambda: m.step(b))
    t = timeit(lambda: m.step(b), n=n, warmup=2)
    del m
    ref_net = net(); opt = torch.optim.SGD(ref_net.parameters(), lr=1e-4, momentum=0.9); amp = AMP(dev, amp_mode)
    t_ref = timeit(lambda: bare_step(ref_net, opt, b, amp), n=n, warmup=2)
    imgs = (0 if feed is Feed.PSEUDO else bs * n_dom) + (tbs if b.x_t is not None or feed is Feed.PSEUDO else 0)
    return dict(stage=s['name'], method=cls.__name__, batch=f"{0 if feed is Feed.PSEUDO else bs * n_dom}+{tbs if imgs > bs * n_dom or feed is Feed.PSEUDO else 0}",
                src=src, tgt=tgt, t=t, t_ref=t_ref, img_s=imgs / t, mem=mem)

def step_rows(names, dev, smoke:bool, n:int)->dict:
    "Every training stage of every recipe, fp32 and bf16; returns {(recipe, stage, amp): result}."
    res = {}
    print(f"{'recipe / stage (method, batch, source / target size)':<78} {'amp':>5} {'step ms':>9} {'bare ms':>9} {'ratio':>6} {'it/s':>6} {'img/s':>7} {'peak GiB':>8}", flush=True)
    for name in names:
        cfg = resolve_config(name)
        for s in protocol(cfg)['stages']:
            if s['name'] == 'translation': continue   # the CycleGAN: not a segmentation step
            for amp in (None, 'bf16'):
                r = bench_stage(cfg, s, amp, dev, smoke, n); res[name, s['name'], amp] = r
                label = f"{name} / {r['stage']} ({r['method']}, {r['batch']}, {'x'.join(map(str, r['src']))} / {'x'.join(map(str, r['tgt']))})"
                print(f"{label:<78} {amp or 'fp32':>5} {r['t']*1e3:9.1f} {r['t_ref']*1e3:9.1f} {r['t']/r['t_ref']:6.3f} {1/r['t']:6.2f} {r['img_s']:7.1f} {r['mem']:8.2f}", flush=True)
    return res

def spcl_2x2(dev, smoke:bool, n:int):
    "The issue's own figure: SPCL's contrastive step at 2+2 full geometry, bf16 (target >= 8 it/s on one H200)."
    cfg = resolve_config('spcl-gta5-cityscapes')
    s = next(s for s in protocol(cfg)['stages'] if s['name'] == 'contrastive')
    r = bench_stage(cfg, s, 'bf16', dev, smoke, n, batch=(2, 2))
    print(f"spcl contrastive 2+2 bf16: {1/r['t']:.2f} it/s (target >= 8 on one H200), ratio to bare passes {r['t']/r['t_ref']:.3f}, peak {r['mem']:.2f} GiB", flush=True)

def loader_rows(data:Path, steps:dict, smoke:bool):
    "Source and target loader throughput at the DEEPLAB_UDA and SPCL inputs, against the images/s their fp32 and bf16 steps consume."
    w = default_workers()
    for name in ('adaptsegnet-gta5-cityscapes', 'spcl-gta5-cityscapes'):
        cfg = resolve_config(name); d = RunData(cfg, None)
        for dom, spec, split in (('source', 'gta5', 'all'), ('target', 'cityscapes', 'train')):
            inp = d.input(dom)
            if smoke: inp = inp.update(resize=SMOKE['size'])
            ds = get_dataset(spec, split, root=data/spec, transform=inp.transform(d.norm, on_device=True))
            bsz = process_batch(cfg, cfg.batch_size if dom == 'source' else cfg.target_batch_size, cfg.world_size)
            it = iter(InfiniteLoader(ds, bsz, seed=0, num_workers=w, pin_memory=torch.cuda.is_available())); next(it)
            k = 4 if smoke else 40
            t0 = time.perf_counter()
            for _ in range(k): next(it)
            rate = k * bsz / (time.perf_counter() - t0); del it
            stage = 'warmup' if name.startswith('spcl') else 'train'
            for amp in (None, 'bf16'):
                r = steps.get((name, stage, amp))
                need = r['img_s'] * (bsz / sum(map(int, r['batch'].split('+')))) if r else float('nan')   # this domain's share
                print(f"loader {name} {dom} ({spec}, batch {bsz}, {w} workers): {rate:7.1f} img/s | the {amp or 'fp32'} step uses {need:7.1f} img/s | ratio {rate/need:6.2f} (target >= 1.5)", flush=True)

def eval_rows(data:Path, dev, smoke:bool, n_img:int)->dict:
    "Evaluation and pseudo-label passes of a DeepLab-v2 at 512x1024 input, 2048x1024 labels, against a bare forward."
    cfg = resolve_config('spcl-gta5-cityscapes'); d = RunData(cfg, None)
    spec = list(SMOKE['size']) if smoke else d.eval_spec('cityscapes')
    ds = get_dataset('cityscapes', 'train', root=data/'cityscapes', transform=eval_input(spec, d.norm, on_device=True))
    ds.files = (ds.files * (n_img // len(ds.files) + 1))[:n_img]   # the 6 written pairs, repeated
    model = MODELS.create(SMOKE['backbone'] if smoke else cfg.backbone, num_classes=19, weights=None).to(dev).eval()
    out = {}
    for amp_mode in (None, 'bf16'):
        amp, bsz = AMP(dev, amp_mode), PASS_BATCH if dev.type == 'cuda' else 1
        xs = [to_device({'image': torch.stack([ds[i]['image'] for i in range(j, min(j + bsz, len(ds)))]), 'norm': [d.norm]}, dev)['image']
              for j in range(0, len(ds), bsz)]
        def bare():
            with torch.no_grad():
                for x in xs:
                    with amp.autocast(): F.interpolate(model(x).logits.float(), (1024, 2048) if not smoke else x.shape[-2:], mode='bilinear').argmax(1)
        t_ref = timeit(bare, n=3, warmup=1)
        t_eval = timeit(lambda: evaluate(model, ds, 19, amp, default_workers()), n=3, warmup=1)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter(); make_pseudo_labels(model, ds, Path(tmp), 0.9, amp, default_workers())
            if dev.type == 'cuda': torch.cuda.synchronize()
            t_pl = time.perf_counter() - t0
        out[amp_mode] = dict(eval_img_s=len(ds) / t_eval, pl_img_s=len(ds) / t_pl, fwd_img_s=len(ds) / t_ref)
        print(f"eval {len(ds)} images 2048x1024 (input {spec}), {amp_mode or 'fp32'}: {len(ds)/t_eval:6.1f} img/s | bare forward {len(ds)/t_ref:6.1f} img/s "
              f"| ratio {t_ref/t_eval:5.3f} (target >= 0.9) | pseudo labels (2 passes + PNGs) {len(ds)/t_pl:6.1f} img/s", flush=True)
    return out

def _split(spec:str, role:str)->int: return SPLIT_SIZES.get(spec if role == 'train' else f'{spec}/val', 500)

def estimate(name:str, steps:dict, passes:dict, amp):
    "Hours of recipe `name` on its own GPU count: training steps + its evaluations + its offline passes."
    cfg = resolve_config(name); p = protocol(cfg); w = cfg.world_size
    train_s = sum(s['iters'] * steps[name, s['name'], amp]['t'] for s in p['stages'] if (name, s['name'], amp) in steps)
    n_eval = sum(s['iters'] // s['eval_every'] if s['eval_every'] else 1 for s in p['stages'] if s['name'] != 'translation')
    evals = sum(_split(t, 'val') for t in p['eval']) / (passes[amp]['eval_img_s'] * w)
    tgt, src = _split(cfg.target, 'train'), sum(_split(x, 'train') for x in cfg.source.split('+'))
    offline = {'pseudo_labels': tgt / passes[amp]['pl_img_s'], 'pseudo_labels_cl': tgt / passes[amp]['pl_img_s'],
               'prototypes': src / passes[amp]['fwd_img_s']}
    off_s = sum(offline.get(o, 0) for o in p['other_stages']) / w
    missing = [s['name'] for s in p['stages'] if (name, s['name'], amp) not in steps]
    print(f"estimate {name} ({w} GPU{'s' if w > 1 else ''}, {amp or 'fp32'}): {(train_s + n_eval * evals + off_s)/3600:6.2f} h "
          f"= training {train_s/3600:.2f} h + {n_eval} evaluations {n_eval*evals/3600:.2f} h + passes {off_s/3600:.2f} h"
          + (f"; not measured: {missing}" if missing else ''), flush=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--recipes', default=','.join(RECIPES_DEFAULT)); ap.add_argument('--smoke', action='store_true')
    ap.add_argument('--n', type=int, default=10, help='timed steps per measurement'); ap.add_argument('--eval_images', type=int, default=24)
    ap.add_argument('--data', default=str(Path(tempfile.gettempdir())/'dass_bench_loader'))
    a = ap.parse_args()
    if not (torch.cuda.is_available() or a.smoke): return print("# bench_cuda: no CUDA device, skipped (run it on a GPU machine; --smoke tests it on the CPU)")
    dev = torch.device('cuda' if torch.cuda.is_available() and not a.smoke else 'cpu')
    if dev.type == 'cuda': print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, {default_workers()} loader workers per process", flush=True)
    names = [r for r in a.recipes.split(',') if r]
    unknown = [r for r in names if r not in RECIPES]
    if unknown: sys.exit(f"bench_cuda: unknown recipes {unknown}")
    from bench_loader import make_data
    data = make_data(Path(a.data))
    steps = step_rows(names, dev, a.smoke, 2 if a.smoke else a.n)
    spcl_2x2(dev, a.smoke, 2 if a.smoke else a.n)
    loader_rows(data, steps, a.smoke)
    passes = eval_rows(data, dev, a.smoke, 2 if a.smoke else a.eval_images)
    for name in names:
        for amp in (None, 'bf16'): estimate(name, steps, passes, amp)

if __name__ == '__main__': main()
