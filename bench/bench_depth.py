"""Depth distribution: the target density map of one 96x161 grid (vectorised over all pixels and classes
against the original's per-pixel, per-class loop), and the spatial-prior refinement of a 760x1280 pseudo
label (scipy.ndimage.label per class against a plain breadth-first flood fill, as the original's C++)."""
import math, time
from collections import deque
from pathlib import Path
import numpy as np, torch
from common import timeit, row
import dass_nb
from dass_nb.depth import load_gmm, target_density_target, spatial_prior_refine, spatial_thresholds

REF = Path(dass_nb.__file__).parents[2]/'shared/reference/depth_distribution_gmm_params.json'
H, W, K = 96, 161, 16
LOOP_PIXELS = 1024   # the loop is timed on this many pixels and extrapolated to the grid

def loop_target_density(gmm, pred, depth, n_pixels):
    "The original's way: for every pixel and class a scalar density call, then the max over classes."
    w, mu, sd = gmm.weights.tolist(), gmm.means.tolist(), gmm.variances.sqrt().tolist()
    out = np.zeros(H * W)
    p, z = pred.reshape(-1).tolist(), depth.reshape(-1).tolist()
    for i in range(n_pixels):
        y, x = divmod(i, W)
        best = 0.
        for k in range(K):
            if p[i] != k or z[i] <= 0: continue
            d = 0.
            for j in range(5):
                t = w[k][j]
                for v, m, s in zip((x, y, z[i]), mu[k][j], sd[k][j]): t *= math.exp(-(v - m) ** 2 / (2 * s * s)) / (s * math.sqrt(2 * math.pi))
                d += t
            best = max(best, d)
        out[i] = 255 * (1 - math.exp(-1e6 * best))
    return out

def flood_fill_refine(lab, thr, ignore=255):
    "Plain breadth-first 8-connected flood fill, one region at a time."
    h, w = lab.shape
    out, seen = lab.copy(), np.zeros((h, w), bool)
    L = lab.tolist()
    for sy in range(h):
        for sx in range(w):
            k = L[sy][sx]
            if k == ignore or seen[sy, sx]: continue
            seen[sy, sx] = True; q, region = deque([(sy, sx)]), []
            while q:
                y, x = q.popleft(); region.append((y, x))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = y + dy, x + dx
                        if 0 <= ny < h and 0 <= nx < w and not seen[ny, nx] and L[ny][nx] == k:
                            seen[ny, nx] = True; q.append((ny, nx))
            if len(region) < thr[k]:
                ys, xs = zip(*region); out[list(ys), list(xs)] = ignore
    return out

def pseudo_labels(h, w, seed=0):
    "Blobby class maps with speckle and ignored low-confidence areas, like confident pseudo labels."
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, K, (1, 1, h // 40, w // 40), generator=g).float()
    lab = torch.nn.functional.interpolate(lab, (h, w), mode='nearest')[0, 0].long()
    noise = torch.rand(h, w, generator=g)
    lab[noise < 0.03] = torch.randint(0, K, (int((noise < 0.03).sum()),), generator=g)
    lab[torch.rand(h // 8, w // 8, generator=g).repeat_interleave(8, 0).repeat_interleave(8, 1) < 0.2] = 255
    return lab.numpy().astype(np.uint8)

if __name__ == '__main__':
    torch.set_num_threads(1)   # both sides single-threaded, as the loop is; threads only add overhead on these small maps
    gmm = load_gmm(REF, 'synthia2cityscapes_16cls')
    g = torch.Generator().manual_seed(0)
    pred, depth = torch.randint(0, K, (1, H, W), generator=g), torch.rand(1, H, W, generator=g) * 260 - 10
    t_vec = timeit(lambda: target_density_target(gmm, pred, depth), n=10)
    t0 = time.perf_counter(); ref = loop_target_density(gmm.to(dtype=torch.float64), pred, depth.double(), LOOP_PIXELS)
    t_loop = (time.perf_counter() - t0) * H * W / LOOP_PIXELS
    ours = target_density_target(gmm, pred, depth).reshape(-1)[:LOOP_PIXELS].double().numpy()
    assert np.allclose(ours, ref[:LOOP_PIXELS], atol=1e-3), 'vectorised density differs from the loop'
    row('target density 96x161, 16 cls (vectorised, 1 thread)', t_vec, 'per-pixel per-class loop', t_loop,
        f'(loop timed on {LOOP_PIXELS} of {H*W} pixels and extrapolated; pure Python, the original calls C per pixel)')

    lab = pseudo_labels(760, 1280)
    thr = spatial_thresholds(K, 'cityscapes', (760, 1280)).numpy()
    t_spa = timeit(lambda: spatial_prior_refine(lab, thr), n=3, warmup=1)
    t0 = time.perf_counter(); ref = flood_fill_refine(lab, thr); t_bfs = time.perf_counter() - t0
    assert (spatial_prior_refine(lab, thr) == ref).all(), 'ndimage refinement differs from the flood fill'
    row('spatial prior 760x1280 (ndimage.label)', t_spa, 'BFS flood fill (Python, 1 run)', t_bfs,
        f'(removed {(ref == 255).mean() - (lab == 255).mean():.3f} of pixels)')
