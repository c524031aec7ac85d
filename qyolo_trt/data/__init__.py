"""Image sources, Ultralytics-exact letterbox and batched loading."""

from .letterbox import LetterboxInfo, letterbox, to_tensor, unletterbox_boxes
from .loader import Batch, ImageLoader, read_image
from .sources import IMAGE_SUFFIXES, list_images

__all__ = [
    "IMAGE_SUFFIXES",
    "Batch",
    "ImageLoader",
    "LetterboxInfo",
    "letterbox",
    "list_images",
    "read_image",
    "to_tensor",
    "unletterbox_boxes",
]
