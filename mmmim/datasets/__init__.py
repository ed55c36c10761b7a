from .fashion_mnist import FashionMNISTDataset, read_idx

__all__ = ['FashionMNISTDataset', 'read_idx']
from .transforms import ImageLoadError, SafeLoadImageFromFile, convert_channels  # noqa: E402,F401
