"`make bench`: run every bench/bench_*.py in its own process (so peak memory is its own) and print its lines."
import subprocess, sys
from pathlib import Path

here = Path(__file__).parent
print(f"{'benchmark':<44} {'ours':>12} | {'reference':<34} {'ref':>12} | ratio = ours / reference (lower is faster) | peak RSS of that process")
failed = []
for f in sorted(here.glob('bench_*.py')):
    print(f"# {f.stem}", flush=True)
    r = subprocess.run([sys.executable, f.name], cwd=here)
    if r.returncode: failed.append(f.name)
if failed: sys.exit(f"benchmarks failed: {failed}")
