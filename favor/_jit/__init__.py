"""Every ``@numba.njit`` function of favor, one module per concept, and nothing else.

Jit functions are dumb: no validation, no RNG, NumPy arrays in and out, documented
preconditions. Each has a slow, obviously correct twin in the tests, and the test suite
also passes with ``NUMBA_DISABLE_JIT=1``. Importing this package loads Numba, so
callers import it lazily, on first use.
"""
