"""Golden fixtures computed with the authors' code (see ``make_golden.py``) and what tests build
from them."""

from .make_golden import authors_state_dict

__all__ = ["authors_state_dict"]
