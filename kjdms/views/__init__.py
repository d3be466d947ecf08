"""The blueprints, one per module; each renders templates/<module>/."""
