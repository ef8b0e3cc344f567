"""Where the engine keeps things, each behind a small class: the feedback log (a Redis
Stream) and its intake, snapshots and their retention, served slates, key names, the
embedded redis-server, the snapshot signing key and the snapshot writer process."""
