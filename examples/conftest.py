"""Lets the example tests import the example models (model copies import them by module name too)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
