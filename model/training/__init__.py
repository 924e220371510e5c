"""Training: the shard reader front end (data.py), the trainer loop, checkpoints, EMA, schedule."""
