"""Benchmarks that compare f0mesh against plain aiortc measured in the same run.

The machine may be shared and noisy, so every figure is a ratio of medians taken from
interleaved repeats in one run, never an absolute number compared with another run.
"""
