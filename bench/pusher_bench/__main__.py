"""``python -m bench.pusher_bench``."""

from .cli import main

main()
