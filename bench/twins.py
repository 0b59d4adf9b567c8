"""Reference twins of `dass_nb.kernels` for bench_kernels.py: the plain loops each kernel replaces, as in the
kernels notebook. Where the notebook's twin reads tensors element by element, these read plain Python lists
taken once, so the bench times the loop itself and not tensor indexing."""
import math
from collections import deque
import numpy as np, torch

IGNORE = 255

def confusion_matrix(pred, target, K, ignore_index=IGNORE):
    "Row k: a bincount of the valid predictions of the pixels whose ground truth is k (one mask per class)."
    p, t = pred.reshape(-1).long(), target.reshape(-1).long()
    cm = torch.zeros(K, K, dtype=torch.long)
    for k in range(K):
        if k == ignore_index: continue
        pk = p[t == k]
        cm[k] = torch.bincount(pk[(pk >= 0) & (pk < K)], minlength=K)
    return cm

def labels_at(labels, size):
    "Output pixel (i, j) copies input pixel (floor(i H/h), floor(j W/w)), the ratios in float32 as PyTorch's."
    (H, W), (h, w) = labels.shape[-2:], size[-2:]
    src = lambda i, n, m: min(int(np.float32(i) * (np.float32(n) / np.float32(m))), n - 1)
    rows, cols = [src(i, H, h) for i in range(h)], [src(j, W, w) for j in range(w)]
    L = labels.tolist()
    return torch.tensor([[[img[r][c] for c in cols] for r in rows] for img in L], dtype=torch.long)

def class_feature_sums(feats, labels, K):
    "Per class: a mask of its pixels, the sum of their feature vectors and their number."
    f = feats.float().permute(0, 2, 3, 1)
    return torch.stack([f[labels == k].sum(0) for k in range(K)]), torch.stack([(labels == k).sum() for k in range(K)])

def class_feature_means(feats, labels, K):
    "Per class: the masked mean of its pixels' feature vectors (zeros when it has none)."
    f = feats.float().permute(0, 2, 3, 1)
    return torch.stack([f[labels == k].mean(0) if (labels == k).any() else torch.zeros(feats.shape[1]) for k in range(K)])

def class_thresholds(batches, K, cap=0.9):
    "The original: gather every pixel's confidence and prediction, sort each class's, take rank round(n/2)."
    conf = torch.cat([p.max(1).values.reshape(-1) for p in batches])
    pred = torch.cat([p.max(1).indices.reshape(-1) for p in batches])
    thr = []
    for k in range(K):
        x = conf[pred == k].sort().values
        thr.append(min(cap, x[int(np.round(0.5 * len(x)))].item()) if len(x) else 0.)
    return torch.tensor(thr, dtype=torch.float64)

def mixture(w, mu, var, pt):
    "Σ_j π_j Π_d N(pt_d; μ_jd, σ²_jd) at one point, for lists `w` [M], `mu`/`var` [M][3]."
    return sum(wj * math.prod(math.exp(-(z - m) ** 2 / (2 * v)) / math.sqrt(2 * math.pi * v) for z, m, v in zip(pt, mj, vj))
               for wj, mj, vj in zip(w, mu, var))

def _lists(gmm): return gmm.weights.tolist(), gmm.means.tolist(), gmm.variances.tolist()

def gmm_density(points, gmm):
    "Every point `[n, 3]` under every class's mixture: `[n, K]`, one scalar mixture call per point and class."
    W, MU, VAR = _lists(gmm)
    return torch.tensor([[mixture(w, mu, var, p) for w, mu, var in zip(W, MU, VAR)] for p in points.tolist()], dtype=torch.float64)

def density_to_target(p): return torch.tensor([255 * (1 - math.exp(-1e6 * v)) for v in p.reshape(-1).tolist()], dtype=torch.float64)

def source_density_target(gmm, pred, labels, depth):
    "Per pixel: the original's K class maps (depth where labelled with that class, else 0), then the predicted class's."
    (B, h, w), (W, MU, VAR) = pred.shape, _lists(gmm)
    P, L, D = pred.tolist(), labels.tolist(), depth.tolist()
    out = torch.zeros(B, 1, h, w, dtype=torch.float64)
    for b in range(B):
        for y in range(h):
            for x in range(w):
                maps = [mixture(W[k], MU[k], VAR[k], (x, y, D[b][y][x] * (L[b][y][x] == k))) for k in range(len(W))]
                out[b, 0, y, x] = 255 * (1 - math.exp(-1e6 * maps[P[b][y][x]]))
    return out

def target_density_target(gmm, pred, depth):
    "Per pixel: K maps, each the class's density where it is predicted and the depth is positive, else 0; their max."
    (B, h, w), (W, MU, VAR) = pred.shape, _lists(gmm)
    P, D = pred.tolist(), depth.tolist()
    out = torch.zeros(B, 1, h, w, dtype=torch.float64)
    for b in range(B):
        for y in range(h):
            for x in range(w):
                d = D[b][y][x]
                maps = [mixture(W[k], MU[k], VAR[k], (x, y, d)) if P[b][y][x] == k and d > 0 else 0. for k in range(len(W))]
                out[b, 0, y, x] = 255 * (1 - math.exp(-1e6 * max(maps)))
    return out

def spatial_prior_refine(lab, thr, ignore_index=IGNORE):
    "Breadth-first 8-connected flood fill of one [H, W] map, one region at a time; small regions become ignored."
    h, w = lab.shape
    out, seen, L = lab.copy(), np.zeros((h, w), bool), lab.tolist()
    for sy in range(h):
        for sx in range(w):
            k = L[sy][sx]
            if k == ignore_index or k >= len(thr) or seen[sy, sx]: continue
            seen[sy, sx], q, region = True, deque([(sy, sx)]), []
            while q:
                y, x = q.popleft(); region.append((y, x))
                for ny in range(max(y - 1, 0), min(y + 2, h)):
                    for nx in range(max(x - 1, 0), min(x + 2, w)):
                        if not seen[ny, nx] and L[ny][nx] == k: seen[ny, nx] = True; q.append((ny, nx))
            if len(region) < thr[k]:
                for y, x in region: out[y, x] = ignore_index
    return out

def instance_stats(x, eps=1e-6):
    "Per image and channel: the mean of its pixels, and the root of their population variance plus `eps`."
    B, C = x.shape[:2]
    mu, sigma = torch.zeros(B, C), torch.zeros(B, C)
    for b in range(B):
        for c in range(C):
            v = x[b, c].double()
            mu[b, c], sigma[b, c] = v.mean(), (((v - v.mean()) ** 2).mean() + eps).sqrt()
    return mu, sigma

def _channel_distance(mode, m, s, pm, ps):
    if mode == 'was': return (m - pm) ** 2 + (s - ps) ** 2
    if mode == 'abs': return abs(m / s - pm / ps)
    return math.log(ps / s) + (s * s + (m - pm) ** 2) / (2 * ps * ps) - 0.5

def style_distance(mu, sigma, base_mu, base_sigma, mode='was', reduce='mean'):
    "Per image and base: the distance of every channel's pair of 1-D Gaussians, then their mean or sum."
    mu, sigma, bm, bs = (t.tolist() for t in (mu, sigma, base_mu, base_sigma))
    C = len(bm[0])
    return torch.tensor([[sum(_channel_distance(mode, mu[b][c], sigma[b][c], bm[m][c], bs[m][c]) for c in range(C)) / (C if reduce == 'mean' else 1)
                          for m in range(len(bm))] for b in range(len(mu))], dtype=torch.float64)

def style_weights(mu, sigma, base_mu, base_sigma, mode='was', reduce='mean'):
    "Per image: exp(1 / (1 + d_m)) over the bases, normalised to sum 1."
    rows = []
    for d in style_distance(mu, sigma, base_mu, base_sigma, mode, reduce).tolist():
        e = [math.exp(1 / (1 + v)) for v in d]
        rows.append([v / sum(e) for v in e])
    return torch.tensor(rows, dtype=torch.float64)

def project_style(x, base_mu, base_sigma, mode='was', reduce='mean'):
    "Per image and channel: standardise with its own statistics, then scale and shift by the λ-mixed bases."
    mu, sigma = instance_stats(x)
    lam = style_weights(mu, sigma, base_mu, base_sigma, mode, reduce)
    out = torch.zeros(x.shape, dtype=torch.float64)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            new_mu, new_sigma = (lam[b] * base_mu[:, c]).sum(), (lam[b] * base_sigma[:, c]).sum()
            out[b, c] = (x[b, c].double() - mu[b, c]) / sigma[b, c] * new_sigma + new_mu
    return out
