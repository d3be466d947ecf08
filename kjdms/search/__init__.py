"""Full-text search: the index protocol, the Whoosh backend and the Chinese analysis."""
from .base import FACETS, NO_REGION, SORTS, IndexResults, Rebuild, ScopeGrant, SearchIndex, SearchRequest
from .whoosh_index import WhooshSearchIndex

__all__ = ["FACETS", "NO_REGION", "SORTS", "IndexResults", "Rebuild", "ScopeGrant", "SearchIndex",
           "SearchRequest", "WhooshSearchIndex"]
