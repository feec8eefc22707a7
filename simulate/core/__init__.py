"""What every family's commands use: flag generation and one-line errors (:mod:`simulate.core.cli`),
provenance and atomic outputs (:mod:`simulate.core.provenance`)."""
