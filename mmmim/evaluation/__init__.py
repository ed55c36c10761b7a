from .knn import knn_predict, knn_top1
from .linear_probe import extract_features, fit_linear_probe, preprocess_items
from .robustness import CorruptionError, SubsetAccuracy
from .subsets import SUBSET_SEED, balanced_subset

__all__ = ['extract_features', 'fit_linear_probe', 'preprocess_items', 'CorruptionError',
           'SubsetAccuracy', 'knn_predict', 'knn_top1', 'balanced_subset', 'SUBSET_SEED']
