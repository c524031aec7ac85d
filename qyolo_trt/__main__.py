"""``python -m qyolo_trt`` == ``qyolo-trt``."""

from .cli import main

main()
