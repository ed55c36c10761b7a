from .fashion_mnist import FashionMNISTDataset, read_idx

__all__ = ['FashionMNISTDataset', 'read_idx']
