"Confusion matrix of one Cityscapes-sized batch: dass_nb's single bincount against a per-class loop and NumPy."
import numpy as np, torch
from common import timeit, row
from dass_nb.metrics import confusion_matrix

def per_class_loop(p, t, K):
    "The reference: one boolean mask per ground-truth class, as many research codes do."
    cm = torch.zeros(K, K, dtype=torch.long)
    valid = t != 255
    for k in range(K):
        m = valid & (t == k)
        cm[k] = torch.bincount(p[m], minlength=K)
    return cm

def numpy_hist(p, t, K):
    "The reference of ADVENT/DADA/SPC (`fast_hist`): NumPy bincount on flattened arrays."
    m = (t >= 0) & (t < K)
    return np.bincount(K * t[m].astype(int) + p[m], minlength=K**2).reshape(K, K)

if __name__ == '__main__':
    K, g = 19, torch.Generator().manual_seed(0)
    t = torch.randint(0, 20, (2, 1024, 2048), generator=g); t[t == 19] = 255
    p = torch.randint(0, K, (2, 1024, 2048), generator=g)
    assert torch.equal(confusion_matrix(p, t, K), per_class_loop(p, t, K))
    ours = timeit(lambda: confusion_matrix(p, t, K), n=5)
    row('confusion_matrix 2x1024x2048, K=19', ours, 'per-class mask loop', timeit(lambda: per_class_loop(p, t, K), n=5))
    pn, tn = p.numpy(), t.numpy()
    row('confusion_matrix 2x1024x2048, K=19', ours, 'numpy fast_hist (ADVENT/SPC)', timeit(lambda: numpy_hist(pn, tn, K), n=5))
