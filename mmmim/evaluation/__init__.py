from .linear_probe import extract_features, fit_linear_probe

__all__ = ['extract_features', 'fit_linear_probe']
