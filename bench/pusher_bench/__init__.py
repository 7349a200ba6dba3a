"""pusher_bench: a load tool for any Pusher-protocol server (sockudo-py, soketi, Sockudo).

Run it from the repository root as ``python -m bench.pusher_bench SCENARIO ...``; see
``bench/README.md`` for the scenarios and ``--help`` for the options.
"""
