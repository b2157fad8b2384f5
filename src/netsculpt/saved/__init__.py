"""The saved-model format: the JSON document (schema, limits, migration) and how its base is built.

:mod:`netsculpt.io` is the public face (``ns.save`` / ``ns.load``); this package holds the parts a
hostile or corrupt file must get through first.
"""
