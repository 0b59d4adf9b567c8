"Shared helpers for `make bench`: timing, peak memory, and the ratio table."
import resource, time, statistics, torch

def timeit(fn, n:int=10, warmup:int=2)->float:
    "Median seconds of `fn()` over `n` runs after `warmup` runs."
    for _ in range(warmup): fn()
    ts = []
    for _ in range(n):
        if torch.cuda.is_available(): torch.cuda.synchronize()
        t0 = time.perf_counter(); fn()
        if torch.cuda.is_available(): torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)

def peak_rss_mb()->float:
    "Peak resident memory of this process so far, in MiB (Linux reports KiB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def row(name:str, t:float, ref_name:str, ref_t:float, note:str=''):
    "One benchmark line: our time, the reference's, their ratio and this process's peak memory."
    print(f"{name:<44} {t*1e3:9.2f} ms | {ref_name:<34} {ref_t*1e3:9.2f} ms | ratio {t/ref_t:7.3f} | peak RSS {peak_rss_mb():7.0f} MiB {note}", flush=True)
