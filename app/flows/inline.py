"""Which templates are cheap enough to render in the process that asks, and what a template
reads from its context.

A render in the worker's own process runs on its event loop, and Jinja gives no way to stop
one midway: a C-level call (``'a'|center(300000000)``) or a long loop holds the process
until it ends. So a template is rendered inline only when its cost is bounded by its own
size times the size of its inputs: a projection. That is a small tree (at most
`MAX_INLINE_NODES` nodes) of names, attribute and item lookups, constants, comparisons,
boolean logic, ``if`` blocks and inline ``if``, tests, and the filters in `INLINE_FILTERS`
(each linear in its input, none growing it). Anything else — loops, macros, calls,
assignments, arithmetic, concatenation, literals that build structures, other filters — is
rendered by a render process under a CPU and memory budget (`worker.templates`).

The rule is a whitelist, so a node type or filter added by a later Jinja is not inline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from jinja2 import nodes

MAX_INLINE_NODES = 64

INLINE_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "count",
        "d",
        "default",
        "first",
        "float",
        "int",
        "last",
        "length",
        "lower",
        "round",
        "title",
        "trim",
        "upper",
    }
)

INLINE_TESTS = frozenset(
    {
        "!=", "<", "<=", "==", ">", ">=", "boolean", "defined", "eq", "equalto", "even",
        "false", "float", "ge", "greaterthan", "gt", "in", "integer", "le", "lessthan",
        "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas", "sequence",
        "string", "true", "undefined", "upper",
    }
)  # fmt: skip

_INLINE_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Const,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.CondExpr,
    nodes.If,
    nodes.Test,
    nodes.Filter,
)


KEYED = ("steps", "secrets", "vars")
"""Context names whose entries a template names one by one (``steps.a``, ``secrets.TOKEN``)."""


@dataclasses.dataclass(frozen=True)
class Needs:
    """The context names a template reads; of each of `KEYED`, the fixed keys it reads
    (``steps.a.output``, ``secrets['TOKEN']``), or None when it reads them otherwise
    (``steps[x]``, ``secrets|list``) or sets the name."""

    names: frozenset[str]
    keys: dict[str, frozenset[str] | None]

    def fixed(self, name: str) -> frozenset[str] | None:
        """The keys of `name` read (empty when `name` is not read at all)."""
        return self.keys.get(name, frozenset()) if name in self.names else frozenset()


def is_inline(tree: nodes.Template) -> bool:
    """Whether the template (or expression) `tree` is a bounded projection of its inputs."""
    for count, node in enumerate(_all(tree), 1):
        if count > MAX_INLINE_NODES or type(node) not in _INLINE_NODES:
            return False
        if isinstance(node, nodes.Name) and node.ctx != "load":
            return False
        if isinstance(node, nodes.Filter) and node.name not in INLINE_FILTERS:
            return False
        if isinstance(node, nodes.Test) and node.name not in INLINE_TESTS:
            return False
    return True


def needs_of(tree: nodes.Template) -> Needs:
    """What `tree` may read from its context: every name it loads (one it also sets may be
    read before it is set)."""
    loads = [node.name for node in tree.find_all(nodes.Name) if node.ctx == "load"]
    rebound = {node.name for node in tree.find_all(nodes.Name) if node.ctx != "load"}
    keys: dict[str, frozenset[str] | None] = {}
    for root in KEYED:
        uses = loads.count(root)
        if not uses:
            continue
        fixed: set[str] = set()
        for node in _all(tree):
            key = _fixed_key(node, root)
            if key is not None:
                fixed.add(key)
                uses -= 1
        keys[root] = frozenset(fixed) if uses == 0 and root not in rebound else None
    return Needs(frozenset(loads), keys)


def _fixed_key(node: nodes.Node, root: str) -> str | None:
    """The key of ``<root>.<key>`` or ``<root>['<key>']``, else None."""
    if isinstance(node, nodes.Getattr):
        inner, key = node.node, node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        inner, key = node.node, node.arg.value
    else:
        return None
    if isinstance(inner, nodes.Name) and inner.name == root and inner.ctx == "load":
        return key if isinstance(key, str) else None
    return None


def _all(tree: nodes.Node) -> Iterator[nodes.Node]:
    yield tree
    yield from tree.find_all(nodes.Node)
