"""nas-engine: neural architecture search with cheap, honest performance estimators.

Public API::

    from nas_engine import Search, Budget, Protocol, create, list_plugins

    result = Search("regularized-evolution", "nb201", "tse-ema",
                    data="digits", budget=Budget(evaluations=12)).run()
    print(result.best.arch, result.best.score)
"""

from .budget import Budget
from .curves import LearningCurve
from .data import Dataset, load_dataset
from .registry import create, list_plugins, register
from .results import Evaluation, SearchResult
from .search import Search
from .training import Protocol, train

__version__ = "0.1.0"

__all__ = [
    "Search", "SearchResult", "Budget", "Evaluation", "Protocol", "LearningCurve",
    "Dataset", "load_dataset", "train", "create", "list_plugins", "register", "__version__",
]
