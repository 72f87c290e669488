"""The numpy/pyarrow peer of `clot-bench io`: loads the same files the way the reference does.

Usage: python3 io_peer.py <dataset-dir> <parquet-file> <repeats>
Prints one JSON object: median seconds for
  loadtxt   every features/**/*.txt with np.loadtxt (float64, as ASOT/CLOT do) then .astype(float32),
            plus every groundTruth file as a list of lines;
  pyarrow   pq.read_table(parquet) and the features column as one float32 numpy array.
"""
import glob
import json
import os
import statistics
import sys
import time

import numpy as np

root, parquet_path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = sorted(glob.glob(os.path.join(root, "features", "**", "*.txt"), recursive=True))


def load_txt():
    total = 0
    for f in files:
        x = np.loadtxt(f).astype(np.float32)
        name = os.path.splitext(os.path.basename(f))[0]
        with open(os.path.join(root, "groundTruth", name)) as g:
            labels = [l.strip() for l in g]
        total += x.shape[0] + 0 * len(labels)
    return total


def load_parquet():
    import pyarrow.parquet as pq

    t = pq.read_table(parquet_path, columns=["video", "frame", "features", "label"])
    feats = t.column("features").combine_chunks().flatten().to_numpy()
    return feats.shape[0]


def med(fn):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


out = {"files": len(files), "numpy": np.__version__, "loadtxt_s": med(load_txt)}
try:
    import pyarrow

    out["pyarrow"] = pyarrow.__version__
    out["pyarrow_s"] = med(load_parquet)
except ImportError:
    out["pyarrow_s"] = None
print(json.dumps(out))
