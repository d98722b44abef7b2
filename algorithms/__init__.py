"""The provider's algorithms, one thin file each; add a new one to ALGORITHMS."""
from __future__ import annotations

from .classify import ClassifyAlgorithm
from .describeclasses import DescribeClassesAlgorithm
from .evaluate import EvaluateAlgorithm
from .installdependencies import InstallDependenciesAlgorithm
from .learnprompts import LearnPromptsAlgorithm
from .modelinfo import ModelInfoAlgorithm
from .train import TrainAlgorithm

ALGORITHMS = [DescribeClassesAlgorithm, TrainAlgorithm, ClassifyAlgorithm, EvaluateAlgorithm, LearnPromptsAlgorithm,
              InstallDependenciesAlgorithm, ModelInfoAlgorithm]
