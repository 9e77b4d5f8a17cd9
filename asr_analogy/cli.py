"""The ``asr-analogy`` command: thin click wrappers around public functions of the same name.

Each command imports its implementation lazily so ``asr-analogy --help`` stays fast. Errors derived from
``AsrAnalogyError`` are printed as ``error: <message>`` with exit status 2, no traceback.
"""

from __future__ import annotations

import sys

import click

from asr_analogy.errors import AsrAnalogyError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AsrAnalogyError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="asr-analogy")
def main() -> None:
    """Adapt speech recognizers to new domains by task-vector arithmetic."""


# ---- merge core ------------------------------------------------------------------------------------------

# ---- speech models ---------------------------------------------------------------------------------------

# ---- data and TTS ----------------------------------------------------------------------------------------

# ---- syn2real ----------------------------------------------------------------------------------------------
