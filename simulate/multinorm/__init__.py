"""The multinorm family's numerical layer: the Monte Carlo (:mod:`simulate.multinorm.mc`), the command
``python -m simulate.multinorm`` (:mod:`simulate.multinorm.command`) and its sweep engine.
"""
