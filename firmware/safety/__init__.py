"""The safety side: the board, the sampler and the interlock in a process of their own.

``process`` runs in the safety process (``python -m firmware.safety``); ``link`` is its
counterpart in the gatekeeper process; ``channel`` is the only thing they share. Nothing here
imports protocol code: see docs/design.md, "The safety process".
"""
