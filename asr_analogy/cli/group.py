"""The ``asr-analogy`` group. Each command imports its implementation lazily so ``asr-analogy --help`` stays
fast. Errors derived from ``AsrAnalogyError``, operating-system and encoding errors are printed as
``error: <message>`` with exit status 2, no traceback (``--debug`` shows it).
"""

from __future__ import annotations

import os
import sys

import click

from asr_analogy.errors import AsrAnalogyError


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: what failed and where (disk full, permission denied, ...)."""
    where = f" {exc.filename}" if exc.filename is not None else ""
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{what}:{where}" if where else what


class _Group(click.Group):
    """Errors a user can act on end as one line ``error: ...`` and exit status 2; ``--debug`` (or
    ``ASR_ANALOGY_DEBUG=1``) shows the traceback instead."""

    def invoke(self, ctx):
        debug = (os.environ.get("ASR_ANALOGY_DEBUG", "").lower() not in ("", "0", "false", "no")
                 or bool((ctx.params or {}).get("debug")))
        try:
            return super().invoke(ctx)
        except (AsrAnalogyError, OSError, UnicodeError) as exc:
            if debug:
                raise
            if isinstance(exc, OSError) and not isinstance(exc, AsrAnalogyError):
                message = os_error_message(exc)
            elif isinstance(exc, UnicodeDecodeError):
                message = f"input is not UTF-8 text ({exc.reason} at byte {exc.start})"
            elif isinstance(exc, UnicodeError):
                message = f"text cannot be encoded ({exc})"
            else:
                message = str(exc)
            click.echo(f"error: {message}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="asr-analogy")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
def main(debug: bool) -> None:
    """Adapt speech recognizers to new domains by task-vector arithmetic."""
