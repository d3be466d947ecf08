"""The region tree kept in each process, reread when any process's commit has changed a region."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from sqlalchemy import event, select

from ..models import Region, Setting

# A settings row whose value every flush that adds, changes or deletes a region replaces, in that flush's
# transaction. A random value rather than a counter: two edits committed at once, or a restored backup, can
# never leave a value a process already holds with another tree.
VERSION_KEY = "region_tree_version"
# Built once per process: building a select and its cache key costs more than running it.
VERSION = select(Setting.value).where(Setting.key == VERSION_KEY)
NODES = select(Region.id, Region.code, Region.name, Region.parent_id, Region.sort_order)

_trees: WeakKeyDictionary = WeakKeyDictionary()  # engine -> RegionTree: one database, one tree
_installed = False


@dataclass(frozen=True)
class RegionNode:
    """One region as the pages show and scope it: no ORM object, no lazy load."""

    id: int
    code: str
    name: str
    parent_id: int | None
    sort_order: int


class RegionTree:
    """The whole region tree as read at one version: each region, and the regions below each."""

    def __init__(self, version: str | None, nodes: list[RegionNode]):
        self.version = version
        self.nodes = {node.id: node for node in nodes}
        self.children: dict[int | None, list[int]] = {}
        for node in nodes:
            self.children.setdefault(node.parent_id, []).append(node.id)

    def below(self, region_ids) -> set[int]:
        """Return region_ids and the ids of every region below them."""
        covered, stack = set(), list(region_ids)
        while stack:
            region_id = stack.pop()
            if region_id not in covered:
                covered.add(region_id)
                stack.extend(self.children.get(region_id, ()))
        return covered

    def in_order(self, region_ids) -> list[RegionNode]:
        """Return the regions of region_ids in their sort order (ties in the order they were added)."""
        return sorted((self.nodes[i] for i in region_ids if i in self.nodes), key=lambda n: (n.sort_order, n.id))


def region_tree(session) -> RegionTree:
    """Return the region tree as committed now: the process's copy, reread if any region changed since.

    Checked on every call with one primary-key read, not every few seconds: the tree decides whose dossiers a
    reviewer sees, so a region moved in the back office must move its dossiers on the very next request in
    every worker process. The read costs less than the region rows it saves.
    """
    engine, connection = session.get_bind(), session.connection()  # Core rows: these selects load no objects
    version = connection.execute(VERSION).scalar()
    tree = _trees.get(engine)
    if tree is None or tree.version != version or version is None:
        # Read after the version: a change committed in between gives a newer tree under the older version,
        # which the next call rereads; never an older tree under a newer version.
        tree = RegionTree(version, [RegionNode(*row) for row in connection.execute(NODES)])
        if version is not None:  # a database whose regions no flush has written yet: nothing to check a copy by
            _trees[engine] = tree
    return tree


def install_versioning(session_factory) -> None:
    """Give the tree a new version in every flush that adds, changes or deletes a region.

    A hook rather than calls in services/regions.py: the back office, `kjdms init` and the tests' fixtures
    write regions too, and a process must never keep a tree a commit has changed. Once per process.
    """
    global _installed
    if _installed:
        return
    _installed = True

    @event.listens_for(session_factory, "before_flush")
    def new_version(session, flush_context, instances):
        if any(isinstance(instance, Region) for changed in (session.new, session.dirty, session.deleted)
               for instance in changed):
            row = session.get(Setting, VERSION_KEY)
            if row is None:
                session.add(Setting(key=VERSION_KEY, value=uuid.uuid4().hex, updated_by_label="系统"))
            else:
                row.value = uuid.uuid4().hex
