"""Reading spec YAML within bounds: a spec is a few kilobytes, so anything far bigger, deeper or more
aliased than that is refused with a message instead of hanging or overflowing the stack.

PyYAML's safe loader composes nested nodes recursively (thousands of levels raise RecursionError),
expands aliases wherever the tree is walked (a few lines of ``&a [*b, *b, ...]`` stand for billions of
nodes), follows recursive aliases (``a: &a {x: *a}``) and converts integers of any length. Here the
document is composed node by node with depth and alias counts checked, its expanded size is counted
on the node graph before anything is built, and integers longer than any setting are refused. YAML
1.1 reads ``1e-4`` as a string; spec files read it as the number people mean.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_BYTES = 256 * 1024  # a spec is a few KB; the largest real ones list special tokens or target modules
MAX_DEPTH = 32  # the spec itself nests 3 levels; room for lists of mappings in plugin options
MAX_NODES = 100_000  # after expanding aliases
MAX_ALIASES = 1_000
MAX_INT_CHARS = 64  # far beyond 2**64; keeps Python's int-from-string limit out of reach

# YAML 1.2 floats: exponents without a dot (1e-4) and with a signed or unsigned exponent
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class SpecYAMLError(yaml.MarkedYAMLError):
    """A bound was exceeded; carries the position like PyYAML's own errors."""


def _too_much(problem: str, mark: Any = None) -> SpecYAMLError:
    return SpecYAMLError(problem=problem, problem_mark=mark)


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts depth and aliases while composing and refuses long integers."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _too_much(f"more than {MAX_ALIASES} aliases (*name)", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _too_much(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value its explicit tag cannot hold (``!!int abc``, ``!!timestamp 1e5``) is a YAML error with
        its position, not the constructor's ValueError or AttributeError."""
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError) as e:
            value = node.value if isinstance(node, yaml.ScalarNode) else "..."
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {str(value)[:40]!r} as {node.tag} ({type(e).__name__})", node.start_mark
            ) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(str(node.value)) > MAX_INT_CHARS:
            raise _too_much(f"an integer of {len(node.value)} characters (at most {MAX_INT_CHARS})",
                            node.start_mark)
        return super().construct_yaml_int(node)


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)
BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789"))


def _check_graph(root: yaml.Node | None) -> None:
    """Refuse recursive aliases and documents whose alias-expanded size exceeds MAX_NODES (counted on
    the composed graph, where an alias is a shared node, so the count itself stays cheap)."""
    if root is None:
        return
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]  # explicit stack: depth is bounded, but be safe
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(size[id(c)] for c in _children(node))
            if total > MAX_NODES:
                raise _too_much(f"more than {MAX_NODES} values once aliases are expanded", node.start_mark)
            size[key] = total
            continue
        if key in size:
            continue
        if key in on_path:
            raise _too_much("a recursive alias (an anchor used inside itself)", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise _too_much("a recursive alias (an anchor used inside itself)", child.start_mark)
            if id(child) not in size:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def compose(text: str) -> yaml.Node | None:
    """The checked node graph of one YAML document (raises yaml.YAMLError)."""
    if len(text) > MAX_BYTES:
        raise _too_much(f"{len(text)} characters; a spec is at most {MAX_BYTES}")
    loader = BoundedLoader(text)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    _check_graph(root)
    return root


def load(text: str) -> Any:
    """The Python value of one YAML document, within the bounds above (raises yaml.YAMLError)."""
    if len(text) > MAX_BYTES:
        raise _too_much(f"{len(text)} characters; a spec is at most {MAX_BYTES}")
    loader = BoundedLoader(text)
    try:
        root = loader.get_single_node()
        _check_graph(root)
        return None if root is None else loader.construct_document(root)
    finally:
        loader.dispose()
