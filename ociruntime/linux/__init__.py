"""Linux-specific parts of the runtime: one module per kernel concern."""
