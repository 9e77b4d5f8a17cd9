"""The ``asr-analogy`` command: thin click wrappers around public functions of the same name.

``main`` (the group and its error handling) lives in ``cli.group``; each module adds the verbs of one area: ``merge``
(merge, vector, apply-vector), ``speech`` (import-ct2, export-ct2, transcribe, evaluate, compare, finetune,
shorten-audio-context), ``data`` (prep, synthesize, list-voices), ``recipe`` (run, demo), and the store's verbs
(store, diagnose, compress) from ``asr_analogy.store.commands``.
"""

from asr_analogy.cli import data, merge, recipe, speech  # noqa: F401 - each registers its commands on main
from asr_analogy.cli.group import main, os_error_message
from asr_analogy.store.commands import compress_cmd, diagnose_cmd, store_group

for _verb in (store_group, diagnose_cmd, compress_cmd):
    main.add_command(_verb)

__all__ = ["main", "os_error_message"]
