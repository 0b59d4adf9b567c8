"Every notebook in nbs/ runs through nbdev_test as its own test case."
import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT / 'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))
NBDEV_TEST = Path(sys.executable).parent / 'nbdev_test'

@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    r = subprocess.run([str(NBDEV_TEST), '--path', str(nb), '--n_workers', '1'], cwd=ROOT,
                       capture_output=True, text=True, timeout=900, env={**os.environ, 'PYTHONHASHSEED': '0'})
    assert r.returncode == 0, f"nbdev_test failed on {nb.name}:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
    assert 'Success' in r.stdout + r.stderr
