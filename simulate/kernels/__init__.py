"""numba kernels of the Monte Carlo engines: the only modules of the project that import numba.

- :mod:`simulate.kernels.rng`: counter-based SplitMix64 streams, ziggurat normals, gamma / chi-square;
- :mod:`simulate.kernels.special`: erfcx and the loss derivative (twin of :func:`theory.ode.loss_derivative`);
- :mod:`simulate.kernels.linear`: the linear classifier's full, explicit-sampler and reduced engines.

Importing this package does not import numba; its submodules do.
"""
