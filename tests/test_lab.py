"`make lab`: JupyterLab starts on loopback, serves the real notebooks, runs kernels on the venv's Python, and stops cleanly."
import json, os, secrets, signal, socket, subprocess, sys, time
from pathlib import Path
from urllib.error import URLError
from urllib.request import Request, urlopen

import psutil, pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / '.venv' / 'bin' if (ROOT / '.venv' / 'bin').is_dir() else Path(sys.executable).parent
PY_NAMES = {'python', 'python3', f'python{sys.version_info[0]}.{sys.version_info[1]}'}  # jupyter_client runs these with its own interpreter

def _free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class Lab:
    "A JupyterLab server on 127.0.0.1 with a random token and throwaway config and runtime folders."
    def __init__(self, tmp:Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f'http://127.0.0.1:{self.port}'
        env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp / 'runtime'), 'JUPYTER_CONFIG_DIR': str(tmp / 'config')}
        cmd = [str(VENV_BIN / 'jupyter'), 'lab', '--no-browser', '--ip', '127.0.0.1', '--port', str(self.port),
               f'--IdentityProvider.token={self.token}', f'--ServerApp.root_dir={ROOT}', '--ServerApp.port_retries=0']
        if os.geteuid() == 0: cmd.append('--allow-root')
        self.log = open(tmp / 'lab.log', 'w')
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def api(self, path:str, method:str='GET', body:dict|None=None, timeout:float=10):
        req = Request(self.url + path, method=method, headers={'Authorization': f'token {self.token}'},
                      data=None if body is None else json.dumps(body).encode())
        with urlopen(req, timeout=timeout) as r: return json.loads(r.read() or b'null')

    def wait_ready(self, timeout:float=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None: break
            try: return self.api('/api/status', timeout=2)
            except (URLError, ConnectionError, TimeoutError, OSError): time.sleep(0.5)
        pytest.fail(f"JupyterLab did not answer /api/status within {timeout} s:\n{self.logtext()}")

    def stop(self, timeout:float=30):
        "SIGTERM, wait, SIGKILL if it does not go; returns how it went."
        if self.proc.poll() is not None: return 'already exited'
        self.proc.send_signal(signal.SIGTERM)
        try: self.proc.wait(timeout); return 'terminated'
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait(10); return 'killed'
        finally: self.log.close()

    def logtext(self)->str:
        if not self.log.closed: self.log.flush()
        return Path(self.log.name).read_text()[-4000:]

@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    lab.stop()

def _kernel_procs(pid:int)->list:
    try: return [p for p in psutil.Process(pid).children(recursive=True) if 'ipykernel_launcher' in ' '.join(p.cmdline())]
    except psutil.NoSuchProcess: return []

def test_lab_serves_notebooks_with_the_venv_kernel(lab):
    status = lab.wait_ready()
    assert 'started' in status

    nb = lab.api('/api/contents/nbs/00_core.ipynb')
    assert nb['type'] == 'notebook'
    assert 'default_exp core' in nb['content']['cells'][0]['source']
    on_disk = json.loads((ROOT / 'nbs' / '00_core.ipynb').read_text())
    assert len(nb['content']['cells']) == len(on_disk['cells'])

    specs = lab.api('/api/kernelspecs')
    argv0 = specs['kernelspecs']['python3']['spec']['argv'][0]
    assert argv0 in PY_NAMES or Path(argv0).parent == VENV_BIN, f"python3 kernel runs {argv0}, not the venv's Python"

    # The kernelspec may say just `python`; start a kernel to see which interpreter really runs it.
    kid = lab.api('/api/kernels', 'POST', {'name': 'python3'})['id']
    end = time.monotonic() + 30
    while not (kps := _kernel_procs(lab.proc.pid)) and time.monotonic() < end: time.sleep(0.3)
    assert kps, f"no kernel process appeared:\n{lab.logtext()}"
    exe = Path(kps[0].cmdline()[0])
    assert exe.parent == VENV_BIN, f"the kernel runs {exe}, not a Python in {VENV_BIN}"
    lab.api(f'/api/kernels/{kid}', 'DELETE')

    pid = lab.proc.pid
    assert lab.stop() == 'terminated', lab.logtext()
    assert lab.proc.returncode is not None and not psutil.pid_exists(pid)
    gone, alive = psutil.wait_procs(kps, timeout=15)
    assert not alive, f"kernel processes left behind: {alive}"

def test_make_lab_binds_loopback_only():
    mk = (ROOT / 'Makefile').read_text()
    line = next(l for l in mk.splitlines() if 'jupyter lab' in l)
    assert '--ip 127.0.0.1' in line and '--no-browser' in line
