"""vitdream's built-in features, each a plugin using the same hooks a third party uses.

Targets are registered as ``"module:Class"`` strings so nothing heavy is imported until used.
"""
