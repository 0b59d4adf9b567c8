"Bad input to a command: one message naming the command, no traceback, exit status 1; --debug or DASS_DEBUG=1: the traceback; papermill: the same message in the failing cell."
import json, os, subprocess, sys
import pytest
from conftest import ROOT, BIN

HINT = '(--debug or DASS_DEBUG=1 shows the traceback)'

def run(cmd:list, **env):
    "Run `cmd` in the project folder without the caller's DASS_DEBUG or IN_TEST, plus `env`."
    base = {k: v for k, v in os.environ.items() if k not in ('DASS_DEBUG', 'IN_TEST')}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env={**base, **env})

@pytest.mark.parametrize('cmd, message', [
    ([str(BIN/'dass_eval'), 'nowhere/last.pt'], "dass_eval: checkpoint 'nowhere/last.pt' does not exist\n"),
    ([sys.executable, '-m', 'data_prep.label_stats', 'gta6', 'nowhere'], "dass_label_stats: unknown dataset 'gta6'"),
], ids=['dass_eval', 'data_prep.label_stats'])   # dass_train: tests/test_train.py
def test_bad_input_is_one_message(cmd, message):
    r = run(cmd)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(message) and r.stderr.endswith(f'\n{HINT}\n') and 'Traceback' not in r.stderr, r.stderr

def test_debug_shows_the_traceback():
    "DASS_DEBUG=1 here; `--debug` is checked in nbs/00_core.ipynb."
    r = run([str(BIN/'dass_eval'), 'nowhere/last.pt'], DASS_DEBUG='1')
    assert r.returncode == 1 and r.stderr.startswith('Traceback (most recent call last)'), r.stderr
    assert r.stderr.splitlines()[-1] == "FileNotFoundError: checkpoint 'nowhere/last.pt' does not exist"

def test_papermill_shows_the_message_in_the_failing_cell(tmp_path):
    out = tmp_path/'out.ipynb'
    r = run([str(BIN/'papermill'), str(ROOT/'nbs'/'train.ipynb'), str(out), '--cwd', str(ROOT/'nbs'), '-p', 'method', 'spcll'])
    assert r.returncode == 1
    nb = json.loads(out.read_text())
    errors = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) if o['output_type'] == 'error']
    assert len(errors) == 1 and len(errors[0]['traceback']) == 2, errors
    message, hint = errors[0]['traceback']
    assert message.startswith("train.ipynb: invalid training parameters:\n  method='spcll': valid methods are") and "'spcl'" in message
    assert hint == '(DASS_DEBUG=1, or %tb in Jupyter, shows the traceback)'
    assert message in r.stderr and 'Cell In[' not in r.stderr, r.stderr   # papermill's report: the message, not IPython's traceback
