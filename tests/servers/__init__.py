"""In-process servers that speak the providers' protocols over real sockets, for tests and benchmarks."""
