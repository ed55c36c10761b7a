from .consistency import ConsistencyLoss

__all__ = ['ConsistencyLoss']
