"""The micro-world: a synthetic maths + knowledge world and a tiny OLMo-2 base model that scalpel pretrains itself.

Format on disk: docs/microworld-format.md.
"""

from scalpel.microworld.build import World, WorldError, build

__all__ = ["World", "WorldError", "build"]
