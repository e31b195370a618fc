"""Compatibility path: :class:`Candidate` and :func:`order_by_score` live in :mod:`promptrec.data.candidate`."""

from promptrec.data.candidate import Candidate, order_by_score

__all__ = ["Candidate", "order_by_score"]
