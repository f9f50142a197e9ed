"""One BLAS thread per driftline process, unless the environment says otherwise.

A worker is one event loop, scaled out by starting more workers; its
matrices are small (a feature correlation matrix over a warm-up, a few
thousand rows). Multi-threaded BLAS only contends with the loop there: on a
busy 2-core machine a 2,000 x 22 correlation took 3.7 ms with two OpenBLAS
threads and 0.4 ms with one, and ten models ending their warm-up together
stalled the worker for over a second. The variables are read when numpy
loads, so this module is imported before anything imports numpy.
"""

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
