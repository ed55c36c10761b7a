from .linear_probe import extract_features, fit_linear_probe, preprocess_items

__all__ = ['extract_features', 'fit_linear_probe', 'preprocess_items']
