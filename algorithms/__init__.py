"""The provider's algorithms, one thin file each; add a new one to ALGORITHMS."""
from __future__ import annotations

from .describeclasses import DescribeClassesAlgorithm

ALGORITHMS = [DescribeClassesAlgorithm]
