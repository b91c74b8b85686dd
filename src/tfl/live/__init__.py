"""The live runtime: one engine, with feeds, brokers and journals per world (replay, paper, live)."""
