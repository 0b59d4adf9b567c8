"The four analysis notebooks run under papermill on tiny runs; their tables and figures hold the right values."
import json, math, shutil, subprocess
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, BIN

def papermill(nb, out_dir, **params):
    "Run `nbs/<nb>.ipynb` with `params` (and `out_dir`); returns the executed notebook as JSON."
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [str(BIN/'papermill'), str(ROOT/'nbs'/f'{nb}.ipynb'), str(out_dir/f'{nb}.ipynb'), '--cwd', str(ROOT/'nbs'),
            '-p', 'out_dir', str(out_dir)]
    for k, v in params.items(): args += ['-p', k, str(v)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=900)   # generous: the CPU is often shared with training runs
    assert r.returncode == 0, f"papermill {nb} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return json.loads((out_dir/f'{nb}.ipynb').read_text())

def n_images(nb_json)->int:
    return sum('image/png' in o.get('data', {}) for c in nb_json['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []))

def is_png(p): return Path(p).read_bytes()[:4] == b'\x89PNG'

@pytest.fixture(scope='session')
def tiny_runs(tmp_path_factory):
    "Two 2-iteration runs (source-only, AdaptSegNet) scored on Cityscapes and BDD100K."
    from dass_nb.runs import make_tiny_runs
    return make_tiny_runs(tmp_path_factory.mktemp('analysis'), eval_targets='bdd100k')

def test_results(tiny_runs, tmp_path):
    nb = papermill('results', tmp_path, runs_dir=tiny_runs)
    m = json.loads((tiny_runs/'source_only'/'metrics.json').read_text())
    tab = pd.read_csv(tmp_path/'results_gta5_cityscapes_19_classes.csv', index_col=0)
    assert list(tab.index) == ['adaptsegnet', 'source_only']
    assert tab.loc['source_only', 'mIoU'] == round(m['target_miou'], 1)
    assert tab.loc['source_only', 'building'] == round(m['per_class_iou']['building'], 1)
    dg = pd.read_csv(tmp_path/'dg.csv', index_col=0)
    assert list(dg.columns) == ['cityscapes', 'bdd100k', 'Avg-T', 'Avg-A']
    ev = [m['eval'][d]['mIoU'] for d in ('cityscapes', 'bdd100k')]
    assert dg.loc['source_only', 'Avg-A'] == pytest.approx(np.mean(ev), abs=0.006)
    for f in ('per_class_iou_gta5_cityscapes_19_classes.png', 'qualitative_gta5_cityscapes_19_classes.png'): assert is_png(tmp_path/f)
    assert n_images(nb) == 2

def test_ccd(tiny_runs, tmp_path):
    papermill('ccd', tmp_path, runs_dir=tiny_runs, runs='source_only', n_images=2)
    ccd = pd.read_csv(tmp_path/'ccd.csv', index_col=[0, 1])
    assert [tuple(i) for i in ccd.index] == [('source_only', 'pooled'), ('source_only', 'gta5'), ('source_only', 'cityscapes')]
    # the notebook's pooled CCD is the one computed here from the same images with the library
    from dass_nb.analysis.features import ClassStats, pixel_features
    from dass_nb.runs import load_model, run_config, run_dataset
    model, cfg = load_model(tiny_runs/'source_only'), run_config(tiny_runs/'source_only')
    st = ClassStats(19)
    for role, spec in (('train', 'gta5'), ('val', 'cityscapes')):
        for f, l in pixel_features(model, run_dataset(cfg, spec, role), n_images=2): st.update(f[None], l[None])
    ref = st.ccd().numpy()
    got = ccd.loc[('source_only', 'pooled')].to_numpy(float)
    assert np.array_equal(np.isnan(got), np.isnan(ref)) and (~np.isnan(ref)).sum() >= 5
    np.testing.assert_allclose(got[~np.isnan(ref)], ref[~np.isnan(ref)], rtol=1e-5)
    assert is_png(tmp_path/'ccd.png')
    s = pd.read_csv(tmp_path/'ccd_summary.csv', index_col=[0, 1])
    assert s.loc[('source_only', 'pooled'), 'all'] == pytest.approx(np.nanmean(ref), rel=1e-5)

def test_tsne(tiny_runs, tmp_path):
    nb = papermill('tsne', tmp_path, runs_dir=tiny_runs, per_class=5, n_images=2)
    s = pd.read_csv(tmp_path/'tsne_summary.csv', index_col=0)
    assert list(s.index) == ['adaptsegnet', 'source_only']
    assert s["points"].nunique() == 1 and 2 * 5 * s["classes"].iloc[0] >= s["points"].iloc[0] > 5   # same pixels, <= 5 per class in each of 2 domains
    assert s['silhouette_features'].between(-1, 1).all()
    assert is_png(tmp_path/'tsne.png') and n_images(nb) == 1

def test_style_distribution(tmp_path):
    papermill('style_distribution', tmp_path)   # defaults: a tiny SPC run on gta5+synthia, scored on cityscapes and bdd100k
    s = pd.read_csv(tmp_path/'style_distribution.csv', index_col=0)
    assert list(s.index) == ['spc'] and s.loc['spc', 'domains'] == 4
    # projected styles are mixtures of the bases: nearer to them and to each other than the raw styles
    assert s.loc['spc', 'to_nearest_base_after'] < s.loc['spc', 'to_nearest_base_before']
    assert s.loc['spc', 'centre_spread_after'] < s.loc['spc', 'centre_spread_before']
    assert is_png(tmp_path/'style_distribution_spc.png')

def outputs_text(nb_json)->str:
    return json.dumps([c.get('outputs', []) for c in nb_json['cells'] if c['cell_type'] == 'code'])

def test_names_relative_to_runs_dir(tiny_runs, tmp_path):
    "A run trained on a dataset in a folder inside the runs folder (MLFA's translated source) is named relative to it."
    runs = tmp_path/'runs'
    translated = runs/'mlfa'/'translation'/'translated'
    shutil.copytree(tiny_runs.parent/'synthetic'/'gta5', translated)
    run = shutil.copytree(tiny_runs/'source_only', runs/'mlfa'/'source_only_translated')
    for f in ('config.json', 'metrics.json'):
        d = json.loads((run/f).read_text())
        for m in (d, d.get('config', {})):
            if 'source' in m: m['source'] = f'gta5:{translated}'
        (run/f).write_text(json.dumps(d))
    res = papermill('results', tmp_path/'results', runs_dir=runs, n_show=1)
    assert 'gta5:mlfa/translation/translated -> cityscapes (19 classes)' in outputs_text(res)
    assert (tmp_path/'results'/'results_gta5_mlfa_translation_translated_cityscapes_19_classes.csv').exists()
    ccd = papermill('ccd', tmp_path/'ccd', runs_dir=runs, n_images=1)
    tab = pd.read_csv(tmp_path/'ccd'/'ccd.csv', index_col=[0, 1])
    assert [tuple(i) for i in tab.index][1] == ('mlfa/source_only_translated', 'gta5:mlfa/translation/translated')
    for nb in (res, ccd): assert str(tmp_path) not in outputs_text(nb)   # no path of this machine in a title, legend or table
