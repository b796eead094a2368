"""Text generation for causal-LM artifacts: continuous batching, sampling, streamed text."""
