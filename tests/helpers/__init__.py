"""What the tests share: peers on loopback, waiting, clocks, builders, tokens, paths."""
