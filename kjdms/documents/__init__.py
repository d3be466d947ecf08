"""Everything that makes or reads a document: the CJK base, the printed forms, images, previews, text.

Documents import models and vocabulary, never services: the services call them.
"""
