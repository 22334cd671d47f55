"""The benchmark runner: configuration matrix, model-copy processes, worker threads, raw results."""
