"""The sync engine's pure core: messages, the conflict judge, identity matching (no storage, no HTTP)."""
