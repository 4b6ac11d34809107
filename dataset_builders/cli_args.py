"""Deprecated, removed in the next release: the old home of the CLI error type and the shared argparse types.

Import ``UsageError`` and ``one_line`` from :mod:`xvlm2vec_common.cli_errors`, the argparse types
(``positive_int``, ``local_or_hub``...) from :mod:`xvlm2vec_common.cli_arguments`; a name read from
here is forwarded there with a ``DeprecationWarning``.
"""

from xvlm2vec_common import cli_arguments, cli_errors
from xvlm2vec_common.deprecation import forward_moved_names

__getattr__ = forward_moved_names(__name__, cli_errors, cli_arguments)
