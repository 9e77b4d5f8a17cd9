"""The merge methods this toolkit runs, by name: the presets of the generalized task-arithmetic kernel
(``kernels.gta``), linear averaging (``kernels.linear``) and SLERP (``kernels.slerp``).

Each method declares its parameters (name, default, allowed range, per model or global) and its paper next
to its maths; see ``merge.params``. Adding a method is one ``preset(...)`` line in ``kernels/gta.py``, or a
new kernel module that defines a ``Method`` and one entry below.
"""

from __future__ import annotations

from asr_analogy.merge.kernels import gta, linear, slerp
from asr_analogy.merge.params import Method

METHODS: dict[str, Method] = {m.name: m for m in (linear.LINEAR, *gta.METHODS, slerp.SLERP)}
