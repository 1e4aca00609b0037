"""huoke's tests.

One BLAS/OpenMP thread per test process and per CLI process a test starts: pytest -n 2 on a
2-core machine and numerical libraries that start a thread per core would fight. Set here, the
package imported before any conftest or test module loads numpy or scikit-learn.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
