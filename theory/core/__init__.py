"""What every model family of the theory uses: Gaussian averages (:mod:`theory.core.gaussian`) and the
aliases of the former module paths (:mod:`theory.core.aliases`)."""
