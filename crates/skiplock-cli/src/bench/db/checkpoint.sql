-- Before a timed run: write dirty pages now rather than in the middle of it.
CHECKPOINT
