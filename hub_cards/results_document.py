"""Deprecated, removed in the next release: the ``results.json`` document lives in
:mod:`xvlm2vec_common.results_document`; a name read from here is forwarded there with a ``DeprecationWarning``.
"""

from xvlm2vec_common import results_document
from xvlm2vec_common.deprecation import forward_moved_names

__getattr__ = forward_moved_names(__name__, results_document)
