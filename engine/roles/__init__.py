"""What runs in a freshrec process: the learner loop, the checkpointer and the replica
follower, each one job, composed by ``node.Node`` (which owns the Redis client)."""
