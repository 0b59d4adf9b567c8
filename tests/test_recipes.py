"""Every recipe resolves, validates and prints its protocol; the paper recipes' protocols match a table of the originals'
facts transcribed into FACTS below from METHODS.md, the reference notes on the original implementations (its section numbers in the table); every recipe runs end to end on CPU,
two iterations per training stage, with an explicit small-size override."""
import json, shutil
import pytest
from dass_nb.core import RECIPES
from dass_nb.training import resolve_config, validate, protocol, train_cli
from dass_nb.recipes import paper_recipes

def test_every_recipe_resolves_validates_and_prints_its_protocol(capsys):
    for name in sorted(RECIPES):
        p = protocol(validate(resolve_config(name)))
        assert p['stages'] and all(s['iters'] >= 1 for s in p['stages']), name
    train_cli(['--recipe', 'spcl-gta5-cityscapes', '--print_config'])
    out = json.loads(capsys.readouterr().out)
    keys = {'recipe', 'method', 'backbone', 'num_classes', 'source', 'target', 'protocol'}
    assert keys <= set(out) and {'world_size', 'stages', 'eval'} <= set(out['protocol'])
    assert [s['name'] for s in out['protocol']['stages']] == ['warmup', 'contrastive', 'self_training']

RESIZE_GTA, RESIZE_CS, FULL = [720, 1280], [512, 1024], 'full'
# (recipe, stage or None for the run, key in the protocol (dotted), the original's value, where METHODS.md says it)
FACTS = [
    # SPCL, METHODS §1.2 (configs), §1.8 (self-training), §1.9 (sampling), §1.10 (evaluation)
    ('spcl-gta5-cityscapes', 'warmup', 'iters', 40000, '§1.2 STOP_ITER'),
    ('spcl-gta5-cityscapes', 'warmup', 'poly_max_iter', 62500, '§1.2 MAX_ITER'),
    ('spcl-gta5-cityscapes', 'warmup', 'lr', 2.5e-4, '§1.2 BASE_LR'),
    ('spcl-gta5-cityscapes', 'warmup', 'head_lr_mult', 10., '§1.2 classifier 10x'),
    ('spcl-gta5-cityscapes', 'warmup', 'batch_source', 1, '§1.2 1+1 per GPU'),
    ('spcl-gta5-cityscapes', 'warmup', 'batch_target', 1, '§1.2 1+1 per GPU'),
    ('spcl-gta5-cityscapes', None, 'world_size', 4, '§1.2 4 GPUs'),
    ('spcl-gta5-cityscapes', 'warmup', 'source_input.resize', RESIZE_GTA, '§1.2 SOURCE_INPUT_SIZE_TRAIN (1280,720)'),
    ('spcl-gta5-cityscapes', 'warmup', 'target_input.resize', RESIZE_CS, '§1.2 TARGET_INPUT_SIZE_TRAIN (1024,512)'),
    ('spcl-gta5-cityscapes', 'warmup', 'source_input.flip', False, '§1.2 HFLIP 0'),
    ('spcl-gta5-cityscapes', 'warmup', 'source_input.jitter', [0.5, 0.5, 0.5, 0.2], '§1.2 ColorJitter (source)'),
    ('spcl-gta5-cityscapes', 'warmup', 'bn', 'frozen', '§1.2 FREEZE_BN True (adv)'),
    ('spcl-gta5-cityscapes', 'contrastive', 'bn', 'frozen', '§1.2 FREEZE_BN True (cl)'),
    ('spcl-gta5-cityscapes', 'contrastive', 'iters', 40000, '§1.2 STOP_ITER (cl)'),
    ('spcl-gta5-cityscapes', 'contrastive', 'sampler', 'class_balanced', '§1.9 class-balanced GTA5'),
    ('spcl-gta5-cityscapes', 'self_training', 'iters', 20000, '§1.8 STOP 20 000'),
    ('spcl-gta5-cityscapes', 'self_training', 'poly_max_iter', 31250, '§1.8 MAX_ITER 31 250'),
    ('spcl-gta5-cityscapes', 'self_training', 'lr', 5e-4, '§1.8 LR 5e-4'),
    ('spcl-gta5-cityscapes', 'self_training', 'batch_target', 2, '§1.8 batch 8 (2/GPU)'),
    ('spcl-gta5-cityscapes', 'self_training', 'batch_source', 0, '§1.8 target only'),
    ('spcl-gta5-cityscapes', 'self_training', 'bn', 'sync', '§1.8 SyncBN'),
    ('spcl-gta5-cityscapes', 'self_training', 'target_input.scale', [0.5, 1.5], '§1.8 RandomScale 0.5-1.5'),
    ('spcl-gta5-cityscapes', 'self_training', 'target_input.crop', [512, 1024], '§1.8 RandomCrop 512x1024'),
    ('spcl-gta5-cityscapes', 'self_training', 'target_input.flip', True, '§1.8 HFlip 0.5'),
    ('spcl-gta5-cityscapes', 'self_training', 'target_input.jitter', [0.5, 0.5, 0.5, 0.2], '§1.8 ColorJitter'),
    ('spcl-gta5-cityscapes', None, 'eval.cityscapes.input', RESIZE_CS, '§1.10 1024x512 input'),
    ('spcl-gta5-cityscapes', None, 'init_from', 'best', '§1.1/§1.8 model_best.pth'),
    ('spcl-gta5-cityscapes', 'warmup', 'amp', None, 'fp32'),
    ('spcl-synthia-cityscapes', 'warmup', 'source_input.resize', [760, 1280], '§1.9 (1280,760)'),
    # Depth distribution, METHODS §3.2, §3.7
    *[(r, 'train', k, v, s) for r in ('depth-synthia-cityscapes-16', 'depth-synthia-cityscapes-7', 'depth-synthia-mapillary-7')
      for k, v, s in [('iters', 90000, '§3.2 MAX_ITERS 90 000'), ('lr', 2.5e-4, '§3.2 LR'), ('head_lr_mult', 1., '§3.2 single group'),
                      ('batch_source', 1, '§3.2 BATCH 1/1'), ('batch_target', 1, '§3.2 BATCH 1/1'),
                      ('source_input.resize', [760, 1280], '§3.2 1280x760'), ('target_input.resize', [760, 1280], '§3.2 1280x760'),
                      ('source_input.flip', False, '§3.2 no flip'), ('source_input.crop', None, '§3.2 no crop'),
                      ('bn', 'affine_frozen', '§3.2 affine frozen, batch statistics'), ('amp', None, 'fp32')]],
    ('depth-synthia-cityscapes-16', 'self_train', 'iters', 30000, '§3.2 MAX_ITERS_SELFTRAIN 30 000'),
    ('depth-synthia-cityscapes-16', 'self_train', 'poly_max_iter', 90000, '§3.7 poly against 90 000'),
    ('depth-synthia-cityscapes-16', 'self_train', 'head_lr_mult', 1., '§3.7 one group'),
    ('depth-synthia-cityscapes-7', 'self_train', 'iters', 10000, '§3.2 MAX_ITERS_SELFTRAIN 10 000'),
    ('depth-synthia-cityscapes-7-small', 'train', 'source_input.resize', [320, 640], '§3.2 640x320'),
    ('depth-synthia-cityscapes-7-small', 'self_train', 'iters', 30000, '§3.2 small 30 000'),
    ('depth-synthia-cityscapes-16', None, 'eval.cityscapes.input', [760, 1280], '§3.2 TEST 1280x760'),
    ('depth-synthia-mapillary-7', None, 'eval.mapillary.input', {'resize_pad': [760, 1280]}, '§3.8 resize_with_pad'),
    ('depth-synthia-cityscapes-16', None, 'init_from', 'best', '§3.7 best on val'),
    # ADVENT, MinEnt, AdaptSegNet, source-only: METHODS §5.3
    *[(r, 'train', k, v, s) for r in ('advent-gta5-cityscapes', 'minent-gta5-cityscapes', 'adaptsegnet-gta5-cityscapes', 'source_only-gta5-cityscapes')
      for k, v, s in [('lr', 2.5e-4, '§5.3 SGD 2.5e-4'), ('head_lr_mult', 10., '§5.3 head 10x'), ('batch_source', 1, '§5.3 batch 1'),
                      ('source_input.resize', RESIZE_GTA, '§5.3 source 1280x720'), ('bn', 'affine_frozen', '§3.2 ADVENT behaviour'),
                      ('amp', None, 'fp32')]],
    ('advent-gta5-cityscapes', 'train', 'iters', 120000, '§5.3 EARLY_STOP 120k'),
    ('advent-gta5-cityscapes', 'train', 'poly_max_iter', 250000, '§5.3 MAX_ITERS 250k'),
    ('advent-gta5-cityscapes', 'train', 'target_input.resize', RESIZE_CS, '§5.3 target 1024x512'),
    ('advent-gta5-cityscapes', 'train', 'eval_every', 2000, '§5.3 every 2000'),
    ('adaptsegnet-gta5-cityscapes', 'train', 'iters', 150000, '§5.3 stop 150k'),
    ('adaptsegnet-gta5-cityscapes', 'train', 'poly_max_iter', 250000, '§5.3 250k'),
    ('advent-synthia-cityscapes', 'train', 'source_input.resize', [760, 1280], 'SYNTHIA 1280x760'),
    # SPC / RobustNet, METHODS §2.5, §2.6
    *[(r, 'train', k, v, s) for r in ('spc-gta5', 'spc-gta5+synthia', 'spc-gta5+synthia+idd', 'dg_baseline-gta5+synthia', 'ibn-gta5+synthia')
      for k, v, s in [('lr', 0.01, '§2.5 LR 0.01'), ('head_lr_mult', 1., 'FIDELITY §2: one group'), ('batch_source', 4, '§2.5 4/domain/GPU'),
                      ('source_input.crop', [768, 768], '§2.5 crop 768'), ('source_input.scale', [0.5, 2.0], '§2.5 scale 0.5-2.0'),
                      ('source_input.jitter', [0.4, 0.4, 0.4, 0.1], '§2.5 ColorJitter'), ('source_input.jitter_p', 0.5, '§2.5 --color_aug 0.5'),
                      ('sampler', 'class_uniform', '§2.5 class-uniform 0.5'), ('bn', 'sync', '§2.5 SyncBN'), ('amp', None, 'fp32')]],
    ('spc-gta5', 'train', 'iters', 40000, '§2.5 40k'), ('spc-gta5+synthia', 'train', 'iters', 40000, '§2.5 40k'),
    ('spc-gta5+synthia+idd', 'train', 'iters', 100000, '§2.5 100k for three sources'),
    ('spc-gta5+synthia', None, 'world_size', 4, '§2.5 4 GPUs'),
    ('spc-gta5+synthia', None, 'eval.mapillary.input', {'resize_height': 1536, 'center_crop': 1536}, '§2.6 ResizeHeight + CenterCrop 1536'),
    ('spc-gta5+synthia', None, 'eval.cityscapes.input', FULL, '§2.6 full 2048x1024'),
    ('spc-gta5+synthia', None, 'eval.bdd100k.input', FULL, '§2.6 full 1280x720'),
]

def _at(d, path):
    for k in path.split('.'): d = d[k]
    return d

@pytest.mark.parametrize('name', sorted({f[0] for f in FACTS}))
def test_paper_recipe_matches_the_originals(name):
    p = protocol(resolve_config(name))
    stages = {s['name']: s for s in p['stages']}
    for r, stage, key, want, where in (f for f in FACTS if f[0] == name):
        got = _at(p if stage is None else stages[stage], key)
        assert got == want, f"{name} {stage or 'run'} {key}: {got!r}, the original {want!r} (METHODS {where})"

def test_every_named_paper_recipe_exists_and_is_checked():
    named = {'source_only-gta5-cityscapes', 'adaptsegnet-gta5-cityscapes', 'advent-gta5-cityscapes', 'advent-synthia-cityscapes',
             'minent-gta5-cityscapes', 'spcl-gta5-cityscapes', 'spcl-synthia-cityscapes', 'depth-synthia-cityscapes-16',
             'depth-synthia-cityscapes-7', 'depth-synthia-mapillary-7', 'depth-synthia-cityscapes-7-small',
             'depth-synthia-mapillary-7-small', 'spc-gta5', 'spc-gta5+synthia', 'spc-gta5+synthia+idd', 'dg_baseline-gta5+synthia',
             'ibn-gta5+synthia', 'mlfa-gta5-cityscapes', 'mlfa-gta5-cityscapes-lsgan'}
    assert named <= set(paper_recipes()), sorted(named - set(paper_recipes()))

SMALL = (32, 64)

def _small_input(i:dict|None)->dict|None:
    "The same input at a small size: a resize and a crop become SMALL, scale, flip and jitter stay."
    if i is None: return None
    return {**i, **{k: SMALL for k in ('resize', 'crop') if i.get(k)}}

def _small_eval(spec):
    if isinstance(spec, dict) and 'resize_pad' in spec: return {'resize_pad': list(SMALL)}
    if isinstance(spec, dict): return {'resize_height': SMALL[0], 'center_crop': SMALL[0]}
    return list(SMALL) if isinstance(spec, (list, tuple)) else spec

def small_override(name:str)->dict:
    "Fields that make recipe `name` a CPU run of two iterations per training stage on small images; the rest is the recipe's."
    f = RECIPES.get(name).fields
    stages = {s: {**o, **{k: 2 for k in ('iters',) if k in o}, **{k: 1 for k in ('target_batch_size',) if k in o},
                  **{k: _small_input(o[k]) for k in ('source_input', 'target_input') if k in o}} for s, o in f.get('stages', {}).items()}
    opts = {'st_iters': 2} if f.get('method') == 'depth_distribution' else {}
    if f.get('method') == 'mlfa': opts = {'stride': 1, 'translation': {'iters': 2, 'crop': [32, 32], 'ngf': 8, 'n_blocks': 1, 'ndf': 8}}
    # grad_clip: randomly initialised networks under frozen BatchNorm diverge at the recipes' learning rates;
    # batch_size 2: DeepLabV3+'s image pooling needs two values per BatchNorm channel
    return dict(iters=2, batch_size=2, target_batch_size=1, crop=SMALL, weights=None, amp=None, world_size=1, eval_every=0, grad_clip=1.0,
                num_workers=0, device='cpu', log_every=1, stages=stages, method_options=opts,
                source_input=_small_input(f.get('source_input')), target_input=_small_input(f.get('target_input')),
                eval_inputs={k: _small_eval(v) for k, v in f.get('eval_inputs', {}).items()})

@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    from dass_nb.data.synthetic import ensure_benchmark
    return ensure_benchmark(tmp_path_factory.mktemp('recipes'), domains='gta5,synthia,cityscapes,mapillary,bdd100k,idd', scale=0.004, H=64, W=128)

@pytest.mark.parametrize('name', sorted(n for n in RECIPES if n != 'self_training-cpu'))
def test_every_recipe_runs_end_to_end(bench, tmp_path, name):
    from dass_nb.training import train
    cfg = resolve_config(name, data_root=str(bench), out_dir=str(tmp_path/'run'), **small_override(name))
    p = protocol(cfg)
    assert all(1 <= s['iters'] <= 2 for s in p['stages']), [(s['name'], s['iters']) for s in p['stages']]
    m = train(cfg)
    assert list(m['stages']) == [s for s in m['stages'] if s in {x['name'] for x in p['stages']} | set(p['other_stages'])]
    assert set(m['stages']) == {s['name'] for s in p['stages']} | set(p['other_stages'])
    assert 0 <= m['target_miou'] <= 100
    if name == 'spcl-gta5-cityscapes':   # each stage starts from the previous stage's best on val, and metrics.json says so
        assert m['init_from'] == 'best' and m['stage_inits']['contrastive'].endswith('warmup/best.pt'), m['stage_inits']
    shutil.rmtree(tmp_path/'run')   # a ResNet-101 run leaves about a gigabyte of checkpoints

# (recipe, field of the resolved configuration (dotted), the original's value, where METHODS.md / FIDELITY.md says it)
OPTION_FACTS = [
    ('spcl-gta5-cityscapes', 'method_options.self_training_iters', 0.5, 'METHODS §1.2: SSL 20k of 40k'),
    ('depth-synthia-cityscapes-16', 'method_options.head_scale', 1., 'METHODS §3.3: heads unscaled'),
    ('depth-synthia-cityscapes-16', 'method_options.gmm', 'original', 'METHODS §3.5: the original GMM parameters'),
    ('depth-synthia-cityscapes-7-small', 'method_options.lambda_dep', 1e-3, 'METHODS §3.2 column 3'),
    ('depth-synthia-mapillary-7', 'method_options.lr_d', 1e-4, 'METHODS §3.2 column 4'),
    ('depth-synthia-mapillary-7', 'method_options.lambda_adv', 1e-3, 'METHODS §3.2 column 4'),
    ('advent-gta5-cityscapes', 'method_options.multi_level', True, 'METHODS §5.3 MULTI_LEVEL'),
    ('minent-gta5-cityscapes', 'method_options.lambda_ent_aux', 2e-4, 'METHODS §5.3 λ_ent aux'),
    ('adaptsegnet-gta5-cityscapes', 'model_options.aspp_rates', (6, 12), 'METHODS §0.8: rates 6 and 12 only'),
    ('adaptsegnet-gta5-cityscapes', 'method_options.lambda_adv_aux', 2e-4, 'METHODS §5.3 λ_adv conv4'),
    ('mlfa-gta5-cityscapes', 'method_options.translation.gan_mode', 'vanilla', 'MLFA Eq. 4 (FIDELITY §4)'),
    ('mlfa-gta5-cityscapes', 'method_options.translation.lambda_id', 0., 'MLFA Eq. 4: no identity term'),
]

@pytest.mark.parametrize('name, field, want, where', OPTION_FACTS)
def test_paper_recipe_options_match_the_originals(name, field, want, where):
    from dass_nb.training import options
    c = resolve_config(name)
    d = {**c.to_dict(), 'method_options': options(c).to_dict()}
    got = _at(d, field)
    assert (tuple(got) if isinstance(got, list) else got) == want, f"{name} {field}: {got!r}, the original {want!r} ({where})"
