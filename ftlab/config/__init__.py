"""The one owner of ftlab's configuration: where the configs live (`ftlab/conf`, shipped in the
wheel), composing them, checking them before anything runs, and building `_target_` nodes.
Nothing else in ftlab reads config YAML or locates the config directory."""

from ftlab.config.checks import checked, resolve_monitor
from ftlab.config.composition import compose, group_node, group_options, groups, sweep_points
from ftlab.config.location import CONF_DIR
from ftlab.config.resolvers import register_resolvers
from ftlab.config.signature import build, build_each, check_node

__all__ = ["CONF_DIR", "build", "build_each", "check_node", "checked", "compose", "group_node", "group_options",
           "groups", "register_resolvers", "resolve_monitor", "sweep_points"]
