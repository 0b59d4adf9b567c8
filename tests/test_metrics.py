"Metrics against the Cityscapes team's reference implementation, and summed across DDP ranks."
import numpy as np, pytest, torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dass_nb.metrics import ConfusionMatrix, confusion_matrix, iou_per_class, mean_iou

def _label_id_to_train_id():
    from cityscapesscripts.helpers.labels import id2label
    lut = np.full(256, 255)
    for l in id2label.values():
        if l.id >= 0 and 0 <= l.trainId < 19: lut[l.id] = l.trainId
    return lut

@pytest.mark.parametrize('seed', [0, 1, 2])
def test_miou_matches_cityscapesscripts(seed):
    pytest.importorskip('cityscapesscripts')
    from cityscapesscripts.helpers.labels import trainId2label
    from dass_nb.metrics import _cityscapes_reference_miou
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 34, (3, 50, 70))
    # a biased predictor, so IoUs spread out instead of all being near 1/19
    pred_train = np.where(rng.random(gt.shape) < 0.6, _label_id_to_train_id()[gt], rng.integers(0, 19, gt.shape))
    pred_train[pred_train == 255] = 0
    pred = np.vectorize(lambda t: trainId2label[t].id)(pred_train)
    ref_miou, ref_iou = _cityscapes_reference_miou(gt, pred)
    cm = confusion_matrix(torch.as_tensor(pred_train), torch.as_tensor(_label_id_to_train_id()[gt]), 19)
    assert abs(mean_iou(cm) - ref_miou) < 1e-12
    np.testing.assert_allclose(iou_per_class(cm).numpy(), np.array(ref_iou), atol=1e-12)
    assert 0.3 < ref_miou < 0.9

def _worker(rank, world, port, q):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    g = torch.Generator().manual_seed(rank)
    t, p = torch.randint(0, 5, (2, 8, 8), generator=g), torch.randint(0, 5, (2, 8, 8), generator=g)
    acc = ConfusionMatrix(5).update(p, t)
    local = acc.mat.clone()
    acc.sync()
    q.put((rank, local, acc.mat, confusion_matrix(p, t, 5, all_reduce=True)))
    dist.destroy_process_group()

def test_confusion_matrix_sums_over_ranks():
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    ctx = mp.get_context('spawn'); q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, q)) for r in range(2)]
    for p in procs: p.start()
    res = dict((r, (l, s, f)) for r, l, s, f in (q.get(timeout=120) for _ in procs))
    for p in procs: p.join(60)
    total = res[0][0] + res[1][0]
    assert not torch.equal(res[0][0], res[1][0])
    for r in (0, 1):
        assert torch.equal(res[r][1], total) and torch.equal(res[r][2], total)
