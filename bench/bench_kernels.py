"""Every kernel of `dass_nb.kernels` against its reference twin (`twins.py`, the plain loops of the kernels notebook)
at realistic sizes, one row per kernel; each row first checks that both give the same result. Every row runs on
one thread, as the twins do, so the ratio compares algorithms and not core counts. A twin too slow to run at full
size is timed on a subset and extrapolated, and its note says so."""
import json, time
from pathlib import Path
import numpy as np, torch
from common import timeit, row
import twins
import dass_nb
from dass_nb.kernels import (confusion_matrix, labels_at, class_feature_sums, class_feature_means, ClassThresholds,
                             gmm_density, ClassGMMs, density_to_target, source_density_target, target_density_target,
                             spatial_prior_refine, instance_stats, style_distance, style_weights, project_style)
from dass_nb.methods.depth_distribution import spatial_thresholds

GMM_FILE = Path(dass_nb.__file__).parent/'assets'/'depth_distribution_gmm_params.json'
K = 19

def once(fn)->tuple:
    "(seconds, result) of a single call of `fn`, for twins too slow to repeat."
    t0 = time.perf_counter(); res = fn()
    return time.perf_counter() - t0, res

def numpy_hist(p, t, K):
    "The confusion matrix of ADVENT/DADA/SPC (`fast_hist`): NumPy bincount on flattened arrays."
    m = (t >= 0) & (t < K)
    return np.bincount(K * t[m].astype(int) + p[m], minlength=K**2).reshape(K, K)

def bench_confusion_matrix(g):
    t = torch.randint(0, 20, (2, 1024, 2048), generator=g); t[t == 19] = 255
    p = torch.randint(0, K, (2, 1024, 2048), generator=g)
    assert torch.equal(confusion_matrix(p, t, K), twins.confusion_matrix(p, t, K))
    pn, tn = p.numpy(), t.numpy()
    row('confusion_matrix 2x1024x2048, K=19', timeit(lambda: confusion_matrix(p, t, K), n=5),
        'reference twin: per-class masks', timeit(lambda: twins.confusion_matrix(p, t, K), n=3, warmup=1),
        f'| numpy fast_hist (ADVENT/SPC) {timeit(lambda: numpy_hist(pn, tn, K), n=3, warmup=1)*1e3:.0f} ms')

def bench_class_features(g):
    "Labels of a 512x1024 image brought to deeplab_r18's feature size (stride 8, 512 channels), then class sums and means."
    lab = torch.randint(0, 20, (2, 512, 1024), generator=g, dtype=torch.uint8); lab[lab == 19] = 255
    assert torch.equal(labels_at(lab, (64, 128)), twins.labels_at(lab, (64, 128)))
    row('labels_at 2x512x1024 -> 64x128', timeit(lambda: labels_at(lab, (64, 128)), n=5),
        'reference twin: index loop', timeit(lambda: twins.labels_at(lab, (64, 128)), n=3, warmup=1))
    feats = torch.randn(2, 512, 64, 128, generator=g)
    labels = torch.randint(0, K, (2, 64, 128), generator=g); labels[:, :8] = 255
    (s, c), (s_ref, c_ref) = class_feature_sums(feats, labels, K), twins.class_feature_sums(feats, labels, K)
    torch.testing.assert_close(s, s_ref, rtol=1e-4, atol=1e-3); assert torch.equal(c, c_ref)
    row('class_feature_sums 2x512x64x128, 19 cls', timeit(lambda: class_feature_sums(feats, labels, K), n=5),
        'reference twin: per-class masked sum', timeit(lambda: twins.class_feature_sums(feats, labels, K), n=5))
    torch.testing.assert_close(class_feature_means(feats, labels, K)[0], twins.class_feature_means(feats, labels, K), rtol=1e-4, atol=1e-5)
    row('class_feature_means 2x512x64x128, 19 cls', timeit(lambda: class_feature_means(feats, labels, K), n=5),
        'reference twin: per-class masked mean', timeit(lambda: twins.class_feature_means(feats, labels, K), n=5))

def bench_thresholds(g):
    """Cityscapes train is 2975 images at 512x1024 (1.56e9 pixels); this stream keeps the shape of an image at a
    quarter of the side, 24 images, cycling over 4 distinct softmax maps so that generating them is not timed."""
    n_img, H, W = 24, 128, 256
    maps = [(torch.randn(1, K, H, W, generator=g) * 3).softmax(1) for _ in range(4)]
    stream = lambda: (maps[i % 4] for i in range(n_img))
    def streaming():
        ct = ClassThresholds(K)
        for p in stream(): ct.update(p)
        return ct.compute()
    px = n_img * H * W
    mem_s = ClassThresholds(K).hist.nbytes + H * W * (4 + 8 + 8 + 8)   # histogram + one image's conf/pred/bin/index
    mem_g = 2 * px * (4 + 8)                                             # conf and pred of all pixels, twice while concatenated
    diff = (streaming() - twins.class_thresholds(list(stream()), K)).abs().max()
    row(f'ClassThresholds stream {n_img}x{H}x{W} ({px/1e6:.1f} Mpx)', timeit(streaming, n=3, warmup=1),
        'reference twin: gather + sort', timeit(lambda: twins.class_thresholds(list(stream()), K), n=3, warmup=1),
        f'| memory {mem_s/2**20:.1f} vs {mem_g/2**20:.1f} MiB (ratio {mem_s/mem_g:.4f}); at 2975x512x1024 the gather '
        f'holds {2975*512*1024*12/2**30:.1f} GiB, the stream stays {mem_s/2**20:.1f} MiB | max |thr diff| {diff:.1e}')

def bench_densities(g):
    "The original 16-class mixtures (SYNTHIA -> Cityscapes) on their 96x161 output grid."
    H, W, KD = 96, 161, 16
    gmm = ClassGMMs.from_json(json.loads(GMM_FILE.read_text())['synthia2cityscapes_16cls_161x96'])
    pred, depth = torch.randint(0, KD, (1, H, W), generator=g), torch.rand(1, H, W, generator=g) * 260 - 10
    labels = torch.where(torch.rand(1, H, W, generator=g) < 0.7, pred, torch.randint(0, KD, (1, H, W), generator=g))
    labels[torch.rand(1, H, W, generator=g) < 0.1] = 255
    ys, xs = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing='ij')
    pts = torch.stack([xs, ys, depth[0]], -1)                                # [H, W, 3]
    every = lambda: gmm_density(pts[..., None, :], gmm.weights, gmm.means, gmm.variances)   # [H, W, K]
    n = 1024
    t_twin, ref = once(lambda: twins.gmm_density(pts.reshape(-1, 3)[:n], gmm))
    assert np.allclose(every().reshape(-1, KD)[:n].double(), ref, rtol=1e-3, atol=1e-12)
    row('gmm_density 96x161 pts x 16 mixtures', timeit(every, n=10), 'reference twin: per point, per class',
        t_twin * H * W / n, f'(twin timed on {n} of {H*W} points and extrapolated; pure Python, the original calls C per pixel)')
    dens = every().amax(-1)[None].contiguous()
    t_twin, ref = once(lambda: twins.density_to_target(dens))
    assert np.allclose(density_to_target(dens).reshape(-1).double(), ref, atol=1e-3)
    row('density_to_target 96x161', timeit(lambda: density_to_target(dens), n=10), 'reference twin: per pixel', t_twin)
    rows = 8
    t_twin, ref = once(lambda: twins.source_density_target(gmm, pred[:, :rows], labels[:, :rows], depth[:, :rows]))
    assert np.allclose(source_density_target(gmm, pred, labels, depth)[:, :, :rows].double(), ref, atol=1e-3)
    row('source_density_target 96x161, 16 cls', timeit(lambda: source_density_target(gmm, pred, labels, depth), n=10),
        'reference twin: K maps per pixel', t_twin * H / rows, f'(twin timed on the top {rows} of {H} rows and extrapolated)')
    t_twin, ref = once(lambda: twins.target_density_target(gmm, pred, depth))
    assert np.allclose(target_density_target(gmm, pred, depth).double(), ref, atol=1e-3)
    row('target_density_target 96x161, 16 cls', timeit(lambda: target_density_target(gmm, pred, depth), n=10),
        'reference twin: K maps per pixel', t_twin, '(twin on the whole grid, 1 run)')

def pseudo_labels(h, w, n_classes, seed=0):
    "Blobby class maps with speckle and ignored low-confidence areas, like confident pseudo labels."
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, n_classes, (1, 1, h // 40, w // 40), generator=g).float()
    lab = torch.nn.functional.interpolate(lab, (h, w), mode='nearest')[0, 0].long()
    noise = torch.rand(h, w, generator=g)
    lab[noise < 0.03] = torch.randint(0, n_classes, (int((noise < 0.03).sum()),), generator=g)
    lab[torch.rand(h // 8, w // 8, generator=g).repeat_interleave(8, 0).repeat_interleave(8, 1) < 0.2] = 255
    return lab.numpy().astype(np.uint8)

def bench_spatial_prior():
    "A 760x1280 pseudo label (the original's Cityscapes size) with the original's 16-class thresholds."
    lab, thr = pseudo_labels(760, 1280, 16), spatial_thresholds(16, 'cityscapes', (760, 1280)).numpy()
    t_twin, ref = once(lambda: twins.spatial_prior_refine(lab, thr))
    assert (spatial_prior_refine(lab, thr) == ref).all(), 'ndimage refinement differs from the flood fill'
    row('spatial_prior_refine 760x1280 (ndimage)', timeit(lambda: spatial_prior_refine(lab, thr), n=3, warmup=1),
        'reference twin: BFS flood fill', t_twin, f'(twin 1 run; removed {(ref == 255).mean() - (lab == 255).mean():.3f} of pixels)')

def bench_style(g):
    "SPC's style projection after the stem of RobustNet's ResNet-50: 64 channels at stride 4 of 768x768 crops, 4 images per GPU, 3 source styles."
    B, C, S, M = 4, 64, 192, 3
    x = torch.randn(B, C, S, S, generator=g) * 2 + 0.5
    bm, bs = torch.randn(M, C, generator=g) * 0.5, torch.rand(M, C, generator=g) + 0.5
    mu, sigma = instance_stats(x)
    for a, b in zip((mu, sigma), twins.instance_stats(x)): torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    row(f'instance_stats {B}x{C}x{S}x{S}', timeit(lambda: instance_stats(x), n=5),
        'reference twin: per image, channel', timeit(lambda: twins.instance_stats(x), n=3, warmup=1))
    torch.testing.assert_close(style_distance(mu, sigma, bm, bs), twins.style_distance(mu, sigma, bm, bs).float(), rtol=1e-4, atol=1e-5)
    row(f'style_distance {B} styles x {M} bases x {C} ch', timeit(lambda: style_distance(mu, sigma, bm, bs), n=20),
        'reference twin: per base, channel', timeit(lambda: twins.style_distance(mu, sigma, bm, bs), n=5))
    torch.testing.assert_close(style_weights(mu, sigma, bm, bs), twins.style_weights(mu, sigma, bm, bs).float(), rtol=1e-4, atol=1e-6)
    row(f'style_weights {B} styles x {M} bases x {C} ch', timeit(lambda: style_weights(mu, sigma, bm, bs), n=20),
        'reference twin: per base, channel', timeit(lambda: twins.style_weights(mu, sigma, bm, bs), n=5))
    torch.testing.assert_close(project_style(x, bm, bs), twins.project_style(x, bm, bs).float(), rtol=1e-4, atol=1e-4)
    row(f'project_style {B}x{C}x{S}x{S}, {M} bases', timeit(lambda: project_style(x, bm, bs), n=5),
        'reference twin: per image, channel', timeit(lambda: twins.project_style(x, bm, bs), n=3, warmup=1))

if __name__ == '__main__':
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    bench_confusion_matrix(g)
    bench_class_features(g)
    bench_thresholds(g)
    bench_densities(g)
    bench_spatial_prior()
    bench_style(g)
