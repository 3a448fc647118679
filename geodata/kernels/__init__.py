"""numba kernels of the road searches (matrices and paths) and the threading-layer pin they need."""
