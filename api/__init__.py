"""freshrec HTTP API (FastAPI): translates HTTP to engine calls and back."""
