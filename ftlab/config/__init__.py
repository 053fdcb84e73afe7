"""The one owner of ftlab's configuration: where the configs live (`ftlab/conf`, shipped in the
wheel), composing them, checking them before anything runs, and building `_target_` nodes.
Nothing else in ftlab reads config YAML or locates the config directory."""

from ftlab.config.signature import build, build_each, check_node, register_resolvers
from ftlab.config.location import CONF_DIR

__all__ = ["CONF_DIR", "build", "build_each", "check_node", "register_resolvers"]
