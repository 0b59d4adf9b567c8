"Decoding one full-size SYNTHIA label (760x1280x3 uint16 PNG): dass_nb.data.png against the pure-Python decoder it replaced."
import struct, tempfile, tracemalloc, zlib
from pathlib import Path
import cv2, numpy as np
from common import timeit, row
from dass_nb.data.png import read_label, write_png
from dass_nb.data.synthetic import render_scene, raw_labels

def unfilter_row(ftype, line, prev, bpp):
    "The reference, part 1: one row of the decoder in dass_nb.data.datasets up to b104ccb, verbatim."
    if ftype == 0: return line
    if ftype == 1: return np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).ravel()
    if ftype == 2: return line + prev
    cur = line.astype(np.int32); p = prev.astype(np.int32)
    for i in range(len(cur)):                         # Average / Paeth depend on the pixel to the left
        a = cur[i - bpp] if i >= bpp else 0
        if ftype == 3: cur[i] = (cur[i] + (a + p[i])//2) & 255; continue
        b, c = p[i], (p[i - bpp] if i >= bpp else 0)
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2*c)
        cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    return cur.astype(np.uint8)

def decode_png(path)->np.ndarray:
    "The reference, part 2: NumPy/zlib PNG decoding, the fallback when OpenCV was missing (`_decode_png`)."
    data = Path(path).read_bytes(); pos, idat, hdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]; pos += 12 + n
        if kind == b'IHDR': hdr = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT': idat.append(body)
        elif kind == b'IEND': break
    w, h, depth, ctype = hdr[:4]
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]; bpp = ch*depth//8
    rows = np.frombuffer(zlib.decompress(b''.join(idat)), np.uint8).reshape(h, w*bpp + 1)
    out, prev = np.empty((h, w*bpp), np.uint8), np.zeros(w*bpp, np.uint8)
    for y in range(h): out[y] = prev = unfilter_row(rows[y, 0], rows[y, 1:], prev, bpp)
    px = out.view('>u2').astype(np.uint16) if depth == 16 else out
    return px.reshape(h, w, ch) if ch > 1 else px.reshape(h, w)

def row_filters(path)->np.ndarray:
    "How many rows of the PNG at `path` use each filter type (None, Sub, Up, Average, Paeth)."
    data, pos, idat = Path(path).read_bytes(), 8, b''
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        if kind == b'IDAT': idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    w, h = struct.unpack('>II', data[16:24])
    return np.bincount(np.frombuffer(zlib.decompress(idat), np.uint8)[::w*6 + 1], minlength=5)

def peak_mib(fn)->float:
    "Peak memory that one call of `fn` allocates through Python and NumPy, in MiB."
    tracemalloc.start(); fn(); peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
    return peak/2**20

if __name__ == '__main__':
    r = render_scene(0, 'synthia', 760, 1280)
    raw = raw_labels(r['label'], r['part'], 'synthia')
    lab = np.stack([raw, r['instance'], np.zeros_like(raw)], -1)  # SYNTHIA's GT/LABELS: class, instance, 0
    with tempfile.TemporaryDirectory() as d:
        libpng, ours = f'{d}/libpng_adaptive.png', f'{d}/write_png.png'
        cv2.imwrite(libpng, lab[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 6, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_ALL_FILTERS])
        write_png(ours, lab)
        # tracemalloc slows the reference's Paeth loop 30x, so peaks are taken on the Up file: the filters do not change them
        peaks = f"alloc peak per decode {peak_mib(lambda: read_label(ours)):.0f} vs {peak_mib(lambda: decode_png(ours)):.0f} MiB"
        for name, f, n_ref in (('libpng adaptive filters', libpng, 3), ("dass_nb's write_png (Up)", ours, 10)):
            assert (read_label(f) == lab[..., 0]).all() and (decode_png(f)[..., 0] == lab[..., 0]).all()
            new, old = timeit(lambda: read_label(f), n=20), timeit(lambda: decode_png(f), n=n_ref, warmup=1)
            row(f'read_label 760x1280x3 u16, {name}', new, 'pure-Python decoder (<= b104ccb)', old,
                f"rows N/S/U/A/P {'/'.join(map(str, row_filters(f)))}; {peaks}")
