"""Full-text search: the index protocol, the Whoosh backend and the Chinese analysis."""
