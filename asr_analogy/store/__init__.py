"""Task vectors as gear: a local, content-addressed store of vectors whose entries are Hugging Face model folders
(``gear``, cards in ``card``), equipped onto a base through the merge engine; interference diagnostics between
vectors before merging (``diagnose``); and the ``store``/``diagnose``/``compress`` commands (``commands``).

The public functions load lazily, so ``asr-analogy --help`` does not import torch.
"""

from importlib import import_module

_PUBLIC = {
    "add": "gear", "list_entries": "gear", "show": "gear", "verify": "gear", "equip": "gear", "rm": "gear",
    "store_dir": "gear",
}
# ``diagnose`` is not re-exported here: the submodule of that name would shadow the function once imported;
# use ``from asr_analogy.store.diagnose import diagnose``.

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f"asr_analogy.store.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'asr_analogy.store' has no attribute {name!r}")
