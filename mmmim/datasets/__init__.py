from .fashion_mnist import FashionMNISTDataset, read_idx

__all__ = ['FashionMNISTDataset', 'read_idx']
from .transforms import ImageLoadError, SafeLoadImageFromFile, convert_channels  # noqa: E402,F401
from .input_pipeline import (LoadJpegBytes, LoadRandomResizedCrop,  # noqa: E402,F401
                             sample_crop_boxes)
