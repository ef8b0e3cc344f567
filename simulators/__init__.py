"""Click-stream simulators and replays that drive freshrec through its real HTTP API."""
