from .linear_probe import extract_features, fit_linear_probe, preprocess_items
from .robustness import CorruptionError, SubsetAccuracy

__all__ = ['extract_features', 'fit_linear_probe', 'preprocess_items', 'CorruptionError',
           'SubsetAccuracy']
