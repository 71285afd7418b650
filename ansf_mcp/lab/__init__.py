"""The offline lab: simulators, replay of git history, training and evaluation of the coordinator.

Nothing in the runtime (`ansf_mcp.coordinator`, the board, the tools) imports this package, except the
benchmarks, which measure with it.
"""
