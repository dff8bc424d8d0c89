"""Runtime-spec conformance checks, runnable against any OCI runtime binary."""
