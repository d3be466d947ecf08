"""The reference a search index is held to: the relevance set as index documents, and a brute-force scan."""
import random
from collections import Counter
from pathlib import Path

import yaml

from kjdms.search import FACETS, ScopeGrant, SearchRequest
from kjdms.search.base import TEXT_FIELDS
from kjdms.search.analysis import query_pieces, substring_matches

RELEVANCE = yaml.safe_load((Path(__file__).parent / "search" / "relevance.yaml").read_text("utf-8"))
# A small tree: 1 above 2 and 3, 2 above 4 and 5 (region_path lists a region and those above it).
PATHS = (["4", "2", "1"], ["5", "2", "1"], ["3", "1"], ["_none"])
STATES = ("draft", "submitted", "approved", "rejected", "archived")


def documents(seed=1):
    """Return the relevance set's dossiers as services.indexing documents, with scattered values."""
    rng = random.Random(seed)
    found = []
    for number, document in enumerate(RELEVANCE["documents"], start=1):
        path = rng.choice(PATHS)
        found.append({
            "dossier_id": number, "name": document["name"], "employer": document["employer"],
            "numbers": [], "region_text": "", "attachments": [document["text"]],
            "region_path": path, "region": path[0], "state": rng.choice(STATES),
            "qualification": rng.choice(("none", "junior", "intermediate")), "education": "bachelor",
            "scope": "in_accounting_work", "job_types": ["cashier"], "year": str(rng.randint(2019, 2021)),
            "has_credit": rng.choice("01"), "kind": "dossier", "id_hash": f"hash{number}",
            "changed": rng.randrange(10**9, 2 * 10**9), "stamp": f"s{number}",
        })
    return found


def scan_search(documents_by_id, request):
    """Answer request by brute force over the documents the index holds: the reference."""
    reached = lambda document: any(set(document["region_path"]) & set(grant.region_keys)  # noqa: E731
                                   and document["state"] in grant.states for grant in request.grants)
    typed = request.text.strip() or request.id_hashes
    if not any(grant.region_keys and grant.states for grant in request.grants) or \
            (typed and not query_pieces(request.text) and not request.id_hashes):
        return [], 0, {}
    found = [document for document in documents_by_id.values()
             if reached(document)
             and all(document[name] == value or (name == "region_path" and value in document[name])
                     for name, value in request.filters.items())
             and all(document["id_hash"] == id_hash for id_hash in request.id_hashes)
             and (not query_pieces(request.text) or substring_matches(
                 [document[name] if isinstance(document[name], str) else "\n".join(document[name])
                  for name in TEXT_FIELDS], request.text))]
    counts = {name: dict(Counter(document[name] for document in found)) for name in FACETS}
    newest_first = sorted(found, key=lambda document: (-document["changed"], document["dossier_id"]))
    return [document["dossier_id"] for document in newest_first], len(found), counts


def requests():
    """Return requests of every kind: relevance queries, several grants, filters, dates, ID hashes."""
    everyone = (ScopeGrant(("1", "_none"), STATES),)
    some = (ScopeGrant(("2",), ("submitted", "approved")), ScopeGrant(("3",), ("draft",)))
    found = []
    for query in RELEVANCE["queries"]:
        found.append(SearchRequest(text=query["query"], grants=everyone, page_size=1000))
        found.append(SearchRequest(text=query["query"], grants=some, sort="date", page_size=1000))
    found += [
        SearchRequest(text="", grants=everyone, page_size=1000),
        SearchRequest(text="会计", grants=some, filters={"qualification": "junior"}, page_size=1000),
        SearchRequest(text="会计 有限公司", grants=everyone, filters={"region_path": "2", "year": "2020"}, page_size=1000),
        SearchRequest(text="", grants=some, id_hashes=("hash5", "hash6"), page_size=1000),
        SearchRequest(text="", grants=everyone, id_hashes=("hash8",), page_size=1000),
        SearchRequest(text="\u200b", grants=everyone),
        SearchRequest(text="会计", grants=()),
    ]
    return found


def fill(search_index, after_chunk=lambda rebuild: None) -> dict:
    """Rebuild search_index from documents() in chunks of 100, replace some, remove 3, 30 and 90; return what it holds."""
    everything = documents()
    rebuild = search_index.start_rebuild()
    for start in range(0, len(everything), 100):
        rebuild.add(everything[start:start + 100], last_id=everything[start:start + 100][-1]["dossier_id"])
        after_chunk(rebuild)
    rebuild.swap()
    changed = [dict(document, state="approved", changed=document["changed"] + 1) for document in everything[::7]]
    search_index.write(changed, deleted_ids=[3, 30, 90])
    held = {document["dossier_id"]: document for document in everything + changed}
    for removed in (3, 30, 90):
        del held[removed]
    return held
