"""The search index in PostgreSQL: a row per dossier, its Chinese tokens in a tsvector under a GIN index."""
from __future__ import annotations

from typing import Callable, Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from .analysis import edge_marked, index_frequencies, normalize, piece_cover, query_pieces
from .base import FACETS, TEXT_FIELDS, VALUE_FIELDS, IndexResults, SearchRequest

# The tables are the backend's own, made on first use (as Whoosh makes its folder), not by a migration:
# a rebuild creates a new one and renames it into place, and an instance on Whoosh has none of them.
TABLE, REBUILD_TABLE, PROGRESS_TABLE = "search_documents", "search_documents_rebuild", "search_rebuild_progress"
INDEX_TABLES = (TABLE, REBUILD_TABLE, PROGRESS_TABLE)
FILTER_COLUMNS = {**{name: name for name in VALUE_FIELDS}, "region_path": "region_path"}
COLUMNS = ("dossier_id", "stamp", "id_hash", "region_path", "job_types", "changed", *VALUE_FIELDS,
           "name_text", "employer_text", "match_text", "terms", "untermed")
# PostgreSQL refuses a lexeme over 2,046 bytes and a tsvector whose lexemes pass 1 MiB. A longer word is
# left out of the tsvector (the text test below still finds it); a row over the limit holds only UNTERMED,
# which every query also asks for, and is tested by its text alone.
MAX_LEXEME_BYTES = 2046
MAX_TSVECTOR_BYTES = 1_000_000
UNTERMED = "<untermed>"  # never a token: a mark is a token of one character
# Relevance: what the typed piece is found in. Whoosh's BM25F ranks a short field that holds the piece
# far above long text that does; the name outranks the employer, which outranks the documents.
NAME_WEIGHT, EMPLOYER_WEIGHT, OTHER_WEIGHT = 4, 2, 1
# Serialises creating, swapping and dropping the tables between processes and machines.
LOCK_KEY = "kjdms search index"


def _tsvector(terms: Iterable[str]) -> str | None:
    """Return the tsvector input of terms (no positions), or None if PostgreSQL would refuse it as too large."""
    # A character takes at most 4 bytes in UTF-8: only a long term needs encoding to be measured.
    lexemes = [term for term in terms
               if len(term) <= MAX_LEXEME_BYTES // 4 or len(term.encode("utf-8")) <= MAX_LEXEME_BYTES]
    # Quoted all at once: the separator is a control character, which no term holds (it separates terms).
    joined = "\x02".join(lexemes)
    if len(joined.encode("utf-8")) > MAX_TSVECTOR_BYTES:
        return None
    return _quoted(joined).replace("\x02", "' '") if lexemes else ""


def _quoted(lexeme: str) -> str:
    """Return lexeme quoted as tsvector and tsquery input read it: taken as it is, no parsing, no stemming."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _marked(normal: str) -> str:
    """Return normalised text with its words' ends marked; PostgreSQL text holds no NUL (a space to search)."""
    return edge_marked(normal).replace("\x00", " ")


def index_row(document: dict) -> dict:
    """Return the table row of a document built by services.indexing."""
    texts = []
    terms: set[str] = set()
    for name in TEXT_FIELDS:
        value = document.get(name) or ""
        normal = normalize("\n".join(value) if isinstance(value, (list, tuple)) else value)
        texts.append(_marked(normal))
        terms.update(index_frequencies(normal, normalized=True))
    row = {"dossier_id": int(document["dossier_id"]), "stamp": document["stamp"],
           "id_hash": document.get("id_hash") or "", "region_path": list(document["region_path"]),
           "job_types": list(document["job_types"]), "changed": int(document["changed"]),
           "name_text": texts[0], "employer_text": texts[1],
           # A piece holds no whitespace, so none is found across the line between two fields.
           "match_text": "\n".join(texts)}
    row["terms"] = _tsvector(terms)
    row["untermed"] = row["terms"] is None
    if row["untermed"]:
        row["terms"] = _quoted(UNTERMED)
    row.update({name: str(document.get(name) or "") for name in VALUE_FIELDS})
    return row


def _create_table(connection: Connection, name: str) -> None:
    """Create an empty index table called name, with only its primary key."""
    connection.execute(text(f"""
        CREATE TABLE IF NOT EXISTS {name} (
            dossier_id integer CONSTRAINT {name}_pkey PRIMARY KEY, stamp text NOT NULL, id_hash text NOT NULL,
            region_path text[] NOT NULL, job_types text[] NOT NULL, changed bigint NOT NULL,
            {', '.join(f'{field} text NOT NULL' for field in VALUE_FIELDS)},
            name_text text NOT NULL, employer_text text NOT NULL, match_text text NOT NULL,
            terms tsvector NOT NULL, untermed boolean NOT NULL)"""))
    # The tsvector out of the row: a search reads its GIN index, never the tsvector, and a narrow row
    # makes a search visiting 8,000 rows three to five times faster (measured at 20,000 dossiers).
    connection.execute(text(f"ALTER TABLE {name} ALTER COLUMN terms SET STORAGE EXTERNAL"))
    # The text, compressed with LZ4 where the server has it, mostly fits in the row (the heap of 20,000
    # dossiers is 34 MB): a piece of several terms is checked without a TOAST lookup, and LZ4 decompresses
    # faster than pglz.
    if connection.scalar(text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")):
        connection.execute(text(f"ALTER TABLE {name} ALTER COLUMN match_text SET COMPRESSION lz4"))


def _create_indexes(connection: Connection, name: str) -> None:
    """Create the secondary indexes of table name: the tokens, the region subtree, the ID hash."""
    for suffix, definition in _secondary_indexes().items():
        connection.execute(text(f"CREATE INDEX IF NOT EXISTS {name}_{suffix} ON {name} {definition}"))


def _secondary_indexes() -> dict[str, str]:
    """Return each secondary index's name suffix and definition."""
    # No pending list: a search would read it for every query, and the worker writes a few rows at a time.
    return {"terms": "USING gin (terms) WITH (fastupdate = off)",
            "region_path": "USING gin (region_path) WITH (fastupdate = off)",
            "id_hash": "(id_hash)"}


def _table_exists(connection: Connection, name: str) -> bool:
    """Tell whether table name exists in the connection's schema."""
    return connection.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name})


def _lock(connection: Connection) -> None:
    """Hold the index's DDL lock until this transaction ends."""
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": LOCK_KEY})


def write_rows(connection: Connection, table: str, documents: Iterable[dict], deleted_ids: Iterable[int]) -> None:
    """Remove deleted_ids from table and insert or replace documents, in connection's transaction."""
    deleted = [int(dossier_id) for dossier_id in deleted_ids]
    if deleted:
        connection.execute(text(f"DELETE FROM {table} WHERE dossier_id = ANY(:ids)"), {"ids": deleted})
    rows = list({row["dossier_id"]: row for row in map(index_row, documents)}.values())
    if not rows:
        return
    values = ", ".join(f"CAST(:{column} AS tsvector)" if column == "terms" else f":{column}" for column in COLUMNS)
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in COLUMNS[1:])
    # An upsert: processes on other machines may write the same dossier at the same moment.
    connection.execute(text(f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({values}) "
                            f"ON CONFLICT (dossier_id) DO UPDATE SET {updates}"), rows)


def copy_rows(connection: Connection, table: str, documents: Iterable[dict]) -> None:
    """Append documents to table with COPY (a rebuild's new rows: none of them is there yet)."""
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for document in documents:
            row = index_row(document)
            copy.write_row([row[column] for column in COLUMNS])


class _Query:
    """The WHERE clause and score of a SearchRequest, with its bound values."""

    def __init__(self, request: SearchRequest, pieces: list[str]):
        self.parameters: dict = {}
        self.where: list[str] = []
        self.scores: list[str] = []
        self.lexemes: list[list[str]] = []  # each piece's terms that the GIN index holds
        for piece in pieces:
            self._piece(piece)
        # With text typed, the GIN index of the terms drives the search: the planner, costing the test
        # of a row's tsvector as cheap as a comparison, would rather walk the region's rows and read
        # each one's tsvector (five times slower for a common word). So the region is tested on the row.
        region_path = "(region_path || ARRAY[]::text[])" if self.lexemes else "region_path"
        if self.lexemes:
            wanted = " & ".join(f"({' & '.join(map(_quoted, terms))})" for terms in self.lexemes)
            self.where.insert(0, f"terms @@ {self._bind(f'({wanted}) | {_quoted(UNTERMED)}', 'tsquery')}")
        grants = [grant for grant in request.grants if grant.region_keys and grant.states]
        self.where.append("(" + " OR ".join(
            f"({region_path} && {self._bind(list(grant.region_keys), 'text[]')} "
            f"AND state = ANY({self._bind(list(grant.states), 'text[]')}))" for grant in grants) + ")")
        for name, value in request.filters.items():
            column = FILTER_COLUMNS.get(name)
            if column == "region_path":
                self.where.append(f"{region_path} @> ARRAY[{self._bind(value)}]")
            elif column:
                self.where.append(f"{column} = {self._bind(value)}")
        for id_hash in request.id_hashes:
            self.where.append(f"id_hash = {self._bind(id_hash)}")

    def _bind(self, value, cast: str | None = None) -> str:
        """Return a placeholder holding value (cast to cast, if given)."""
        name = f"p{len(self.parameters)}"
        self.parameters[name] = value
        return f"CAST(:{name} AS {cast})" if cast else f":{name}"

    def _piece(self, piece: str) -> None:
        """Require the piece in some field, and score where it is found."""
        cover = [term for _, term in piece_cover(piece)]
        lexemes = list(dict.fromkeys(term for term in cover if len(term.encode("utf-8")) <= MAX_LEXEME_BYTES))
        marked = self._bind(_marked(piece))  # query_pieces are normalised
        in_text = f"strpos(match_text, {marked}) > 0"
        if lexemes:
            # The index answers "holds every term" (or is untermed) for all pieces at once.
            self.lexemes.append(lexemes)
            # One term is the piece itself (a character, a bigram, a whole word); several only tell which
            # rows may hold it, and the text says whether they do, where Whoosh reads its column.
            exact = len(cover) == 1 and len(lexemes) == 1
            self.where.append(f"(NOT untermed OR {in_text})" if exact else in_text)
        else:
            self.where.append(in_text)
        self.scores.append(f"CASE WHEN strpos(name_text, {marked}) > 0 THEN {NAME_WEIGHT} "
                           f"WHEN strpos(employer_text, {marked}) > 0 THEN {EMPLOYER_WEIGHT} ELSE {OTHER_WEIGHT} END")


def search_sql(table: str, query: _Query, by_relevance: bool) -> str:
    """Return the statement answering a query: the page's ids, the total and every facet's counts, at one snapshot."""
    score = " + ".join(query.scores) if by_relevance else "0"
    facets = ", ".join(f"({name})" for name in FACETS)
    which = " ".join(f"WHEN GROUPING({name}) = 0 THEN '{name}'" for name in FACETS)
    return f"""
        WITH matched AS MATERIALIZED (
            SELECT dossier_id, changed, {', '.join(FACETS)}, {score} AS score
            FROM {table} WHERE {' AND '.join(query.where)})
        SELECT NULL AS facet, NULL AS value, (SELECT count(*) FROM matched) AS count,
               (SELECT array_agg(dossier_id ORDER BY score DESC, changed DESC, dossier_id) FROM (
                    SELECT dossier_id, score, changed FROM matched ORDER BY score DESC, changed DESC, dossier_id
                    LIMIT :limit OFFSET :offset) page) AS ids
        UNION ALL
        SELECT CASE {which} END, COALESCE({', '.join(FACETS)}), count(*), NULL
        FROM matched GROUP BY GROUPING SETS ({facets})"""


class PostgresSearchIndex:
    """SearchIndex in the instance's PostgreSQL database: every process on every machine reads and writes it."""

    def __init__(self, engine: Callable[[], Engine]):
        # A getter: the application's engine is replaced in each forked server process.
        self.engine = engine
        self._ready = False

    def ensure_tables(self) -> bool:
        """Create the index table if it is missing; return True if it was created."""
        with self.engine().begin() as connection:
            _lock(connection)
            created = not _table_exists(connection, TABLE)
            if created:
                _create_table(connection, TABLE)
                _create_indexes(connection, TABLE)
        self._ready = True
        return created

    def _begin(self):
        """Return a transaction on a connection, the tables made first if this process has not seen them yet."""
        if not self._ready:
            self.ensure_tables()
        return self.engine().begin()

    # -- SearchIndex ----------------------------------------------------------------------

    def write(self, documents: Iterable[dict], deleted_ids: Iterable[int] = ()) -> None:
        """Add or replace documents and remove deleted_ids in one transaction."""
        with self._begin() as connection:
            write_rows(connection, TABLE, documents, deleted_ids)

    def search(self, request: SearchRequest) -> IndexResults:
        """Return the page of matches within the request's scope, with facet counts over all of them."""
        grants = [grant for grant in request.grants if grant.region_keys and grant.states]
        typed = bool(request.text.strip()) or bool(request.id_hashes)
        pieces = query_pieces(request.text) if request.text.strip() else []
        if not grants or (typed and not pieces and not request.id_hashes):
            return IndexResults([], 0, {})
        query = _Query(request, pieces)
        parameters = {**query.parameters, "limit": request.page_size,
                      "offset": (request.page - 1) * request.page_size}
        with self._begin() as connection:
            # A search of many matches is costed high enough for JIT, whose compiling takes longer than the search.
            connection.execute(text("SET LOCAL jit = off"))
            if query.lexemes:
                # Nor a sequential scan testing every row's tsvector: the index, whatever share of rows matches.
                connection.execute(text("SET LOCAL enable_seqscan = off"))
            rows = connection.execute(text(search_sql(TABLE, query, bool(pieces) and request.sort != "date")),
                                      parameters).all()
        counts: dict[str, dict[str, int]] = {name: {} for name in FACETS}
        total, ids = 0, []
        for facet, value, count, page in rows:
            if facet is None:
                total, ids = count, list(page or [])
            elif value:
                counts[facet][value] = count
        return IndexResults(ids, total, counts)

    def stamps(self) -> dict[int, str]:
        """Return every indexed dossier id with its document's stamp."""
        with self._begin() as connection:
            return dict(connection.execute(text(f"SELECT dossier_id, stamp FROM {TABLE}")).all())

    def doc_count(self) -> int:
        """Return how many dossiers the index holds."""
        with self._begin() as connection:
            return connection.scalar(text(f"SELECT count(*) FROM {TABLE}"))

    def start_rebuild(self, outbox_mark: int = 0) -> PostgresRebuild:
        """Return the unfinished rebuild to resume, or a new empty one remembering outbox_mark."""
        if not self._ready:
            self.ensure_tables()
        return PostgresRebuild(self, outbox_mark)

    def merge_small_segments(self, *, busy: bool = False) -> bool:
        """Return False: PostgreSQL keeps its GIN index tidy itself (autovacuum folds in its pending list)."""
        return False

    def purge_deleted(self) -> None:
        """Rewrite the index tables, so that removed rows' text leaves their files (and the GIN index's keys)."""
        # Until VACUUM FULL, a deleted row's bytes stay in the table's pages, and GIN keeps every key it
        # ever held. It locks the table for the rewrite: searches wait that long (the purge runs rarely).
        with self.engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in (TABLE, REBUILD_TABLE):
                if _table_exists(connection, table):
                    connection.execute(text(f"VACUUM FULL {table}"))

    def remove_stale_generations(self) -> list[str]:
        """Return []: a swap drops the table it replaces in its own transaction, so none is ever left."""
        return []

    def drop(self) -> None:
        """Drop every table of the index (the instance then searches an empty one, or `kjdms reindex` refills it)."""
        with self.engine().begin() as connection:
            _lock(connection)
            for table in INDEX_TABLES:
                connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
        self._ready = False


class PostgresRebuild:
    """A new table filled beside the live one, its progress in a table of its own, renamed into place at the end."""

    def __init__(self, live: PostgresSearchIndex, outbox_mark: int):
        self.live = live
        with live.engine().begin() as connection:
            _lock(connection)
            connection.execute(text(f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} "
                                    "(last_id integer NOT NULL, outbox_mark integer NOT NULL)"))
            saved = connection.execute(text(f"SELECT last_id, outbox_mark FROM {PROGRESS_TABLE}")).first()
            if saved is not None and _table_exists(connection, REBUILD_TABLE):
                self.resume_after, self.outbox_mark = saved
                return
            connection.execute(text(f"DROP TABLE IF EXISTS {REBUILD_TABLE}"))
            _create_table(connection, REBUILD_TABLE)
            connection.execute(text(f"DELETE FROM {PROGRESS_TABLE}"))
            connection.execute(text(f"INSERT INTO {PROGRESS_TABLE} VALUES (0, :mark)"), {"mark": outbox_mark})
        self.resume_after, self.outbox_mark = 0, outbox_mark

    def add(self, documents: list[dict], last_id: int) -> None:
        """Add documents and record last_id as done, in one transaction: a checkpoint is never ahead of its rows."""
        with self.live.engine().begin() as connection:
            copy_rows(connection, REBUILD_TABLE, documents)
            connection.execute(text(f"UPDATE {PROGRESS_TABLE} SET last_id = :last"), {"last": last_id})
        self.resume_after = last_id

    def write(self, documents: Iterable[dict], deleted_ids: Iterable[int] = ()) -> None:
        """Replace or remove documents that changed while the rebuild ran (the outbox replay before the swap)."""
        with self.live.engine().begin() as connection:
            write_rows(connection, REBUILD_TABLE, documents, deleted_ids)

    def swap(self) -> None:
        """Index the new table, then drop the live one and rename the new one into its place in one transaction."""
        # Built once over all rows, which is many times faster than growing the GIN index row by row;
        # the live table keeps answering meanwhile.
        with self.live.engine().begin() as connection:
            connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            _create_indexes(connection, REBUILD_TABLE)
        with self.live.engine().begin() as connection:
            _lock(connection)
            # Searches and writes wait here for the moment of the swap, then read the new table by its name.
            connection.execute(text(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE"))
            connection.execute(text(f"DROP TABLE {TABLE}"))
            connection.execute(text(f"ALTER TABLE {REBUILD_TABLE} RENAME TO {TABLE}"))
            for suffix in ("pkey", *_secondary_indexes()):
                connection.execute(text(f"ALTER INDEX {REBUILD_TABLE}_{suffix} RENAME TO {TABLE}_{suffix}"))
            connection.execute(text(f"DROP TABLE {PROGRESS_TABLE}"))
        with self.live.engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"ANALYZE {TABLE}"))
