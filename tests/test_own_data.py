"""A user's own data: `folder:` datasets of 2 and 5 classes (from their classes.txt) trained end to end by the CLI with
TensorBoard on, scored by `dass_eval` under their own class names, and every registered method on the 5-class pair."""
import json
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

from dass_nb.core import METHODS
from dass_nb.training import TrainConfig, train, train_cli
from dass_nb.evaluation import eval_cli
from dass_nb.tracking import read_events

TWO, FIVE = ('background', 'lesion'), ('water', 'field', 'forest', 'road', 'roof')

def write_folder(root:Path, classes, seed:int, n_train:int=4, n_val:int=2, H:int=64, W:int=128)->str:
    "A folder dataset of `classes`: class 0 everywhere but a rectangle of each other class, a colour per class and noise."
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True); (root/'classes.txt').write_text('\n'.join(classes) + '\n')
    palette = rng.integers(0, 256, (len(classes), 3))    # each domain its own colours: a domain gap
    for split, n in (('train', n_train), ('val', n_val)):
        for sub in ('images', 'labels'): (root/split/sub).mkdir(parents=True)
        for i in range(n):
            lab = np.zeros((H, W), np.uint8)
            for k in range(1, len(classes)):
                h, w = rng.integers(8, H // 2), rng.integers(8, W // 3)
                y, x = rng.integers(0, H - h), rng.integers(0, W - w)
                lab[y:y + h, x:x + w] = k
            lab[:2] = 255                                    # an unlabelled strip
            img = palette[np.minimum(lab, len(classes) - 1)] + rng.normal(0, 20, (H, W, 3))
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root/split/'images'/f'{split}{i}.png')
            Image.fromarray(lab).save(root/split/'labels'/f'{split}{i}.png')
    return f'folder:{root}'

@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    "(source, target) specs of a 2-class and a 5-class pair of folder datasets."
    d = tmp_path_factory.mktemp('own')
    return {2: (write_folder(d/'src2', TWO, 0), write_folder(d/'tgt2', TWO, 1)),
            5: (write_folder(d/'src5', FIVE, 2), write_folder(d/'tgt5', FIVE, 3))}

def tiny(source, target, out_dir, **kw)->TrainConfig:
    return TrainConfig(**{**dict(source=source, target=target, backbone='deeplab_r18', weights=None, iters=2, batch_size=2,
                                 target_batch_size=1, crop=(48, 96), eval_every=0, num_workers=0, device='cpu', log_every=1,
                                 out_dir=str(out_dir)), **kw})

def test_two_classes_cli_tensorboard_and_eval(pairs, tmp_path, capsys):
    src, tgt = pairs[2]
    train_cli(['--method', 'adaptsegnet', '--source', src, '--target', tgt, '--backbone', 'deeplab_r18', '--weights', 'none',
               '--iters', '4', '--eval_every', '2', '--log_every', '2', '--batch_size', '2', '--target_batch_size', '1',
               '--crop', '48', '96', '--num_workers', '0', '--device', 'cpu', '--tensorboard', '--out_dir', str(tmp_path/'run')])
    assert 'adaptsegnet folder:' in capsys.readouterr().out
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert (m['num_classes'], list(m['per_class_iou']), m['config']['num_classes']) == (2, list(TWO), 2)
    assert json.loads((tmp_path/'run'/'config.json').read_text())['num_classes'] == 2   # what dass_eval rebuilds the network from
    ev = read_events(tmp_path/'run'/'train'/'tb')
    assert {'train/seg', 'train/adv', 'train/lr', 'val/mIoU'} <= set(ev['scalars'])
    assert [s for s, _ in ev['scalars']['train/seg']] == [2, 4] and [s for s, _ in ev['scalars']['val/mIoU']] == [2, 4]
    assert {t for t in ev['scalars'] if t.startswith('val_IoU/')} <= {f'val_IoU/{c}' for c in TWO}
    assert ev['images'] == {'val_images/val0': [2, 4], 'val_images/val1': [2, 4]}
    eval_cli(str(tmp_path/'run'), tgt)
    out = capsys.readouterr().out
    assert all(c in out for c in TWO) and 'road' not in out and 'mIoU' in out

def test_folder_classes_must_agree(pairs, tmp_path, capsys):
    with pytest.raises(ValueError, match="a run's datasets share one list of classes"): train(tiny(pairs[2][0], pairs[5][1], tmp_path/'x'))
    with pytest.raises(ValueError, match='num_classes=19: folder:'): train(tiny(*pairs[5], tmp_path/'x', num_classes=19))
    with pytest.raises(SystemExit) as e: train_cli(['--source', pairs[5][0], '--out_dir', str(tmp_path/'x'), '--print_config'])
    assert e.value.code == 1 and 'dass_train: cityscapes reads 19, 16 or 7 classes' in capsys.readouterr().err

OPTIONS = {'mlfa': {'stride': 1, 'translation': {'iters': 2, 'crop': [32, 32], 'ngf': 8, 'n_blocks': 1, 'ndf': 8}}}

@pytest.mark.parametrize('method', sorted(METHODS))
def test_every_method_on_five_classes(pairs, tmp_path_factory, method):
    runs = tmp_path_factory.getbasetemp()/'own_runs'
    cfg = tiny(*pairs[5], runs/method, method=method, method_options=OPTIONS.get(method, {}))
    if method == 'depth_distribution':
        with pytest.raises(ValueError, match="depth_distribution needs the source's depth maps"): train(cfg)
        return
    if method == 'self_training':   # pseudo labels of a network trained on the source
        base = runs/'source_only'
        if not (base/'metrics.json').exists(): train(tiny(*pairs[5], base))
        cfg = cfg.update(method_options={'init': json.loads((base/'metrics.json').read_text())['final_checkpoint']})
    m = train(cfg)
    assert (m['num_classes'], list(m['per_class_iou'])) == (5, list(FIVE)) and 0 <= m['target_miou'] <= 100
    assert len(m['eval'][cfg.target]['confusion_matrix']) == 5
