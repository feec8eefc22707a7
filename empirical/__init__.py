"""PyTorch experiments on real images: data, models, threat models, attacks, training, evaluation.

Needs the optional dependency torch (``pip install -e .[empirical]``).
"""
