from .batch_crop import BatchRandomResizedCropDataPreprocessor
from .jpeg_decode import JpegDecodeDataPreprocessor, check_jpeg_decode_device

__all__ = ['BatchRandomResizedCropDataPreprocessor', 'JpegDecodeDataPreprocessor',
           'check_jpeg_decode_device']
