from .jpeg_decode import JpegDecodeDataPreprocessor, check_jpeg_decode_device

__all__ = ['JpegDecodeDataPreprocessor', 'check_jpeg_decode_device']
