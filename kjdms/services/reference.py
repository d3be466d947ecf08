"""Load the shipped reference data (the region tree) idempotently."""
from __future__ import annotations

from importlib import resources

import yaml
from sqlalchemy import select

from ..models import Region

REGION_FIELDS = ("name", "kind", "office_name", "phone", "address", "collected_elsewhere")


def load_regions(session) -> tuple[int, int]:
    """Insert or update every shipped region by code; return (added, changed)."""
    tree = yaml.safe_load(resources.files("kjdms").joinpath("data/regions.yaml").read_text("utf-8"))
    existing = {region.code: region for region in session.scalars(select(Region))}
    counts = [0, 0]

    def visit(nodes, parent, order_start=0):
        for order, node in enumerate(nodes, start=order_start):
            region = existing.get(node["code"])
            values = {field: node.get(field) for field in REGION_FIELDS}
            values["collected_elsewhere"] = bool(values["collected_elsewhere"])
            values.update(parent=parent, sort_order=order)
            if region is None:
                region = Region(code=node["code"], **values)
                session.add(region)
                counts[0] += 1
            elif region.edited_at is None and any(getattr(region, key) != value for key, value in values.items()):
                # An administrator's edit (edited_at) wins over the shipped data from then on.
                for key, value in values.items():
                    setattr(region, key, value)
                counts[1] += 1
            visit(node.get("children", []), region)

    visit(tree, None)
    session.commit()
    return counts[0], counts[1]


def region_by_code(session, code: str) -> Region | None:
    """Return the region with code, or None."""
    return session.scalar(select(Region).where(Region.code == code))
