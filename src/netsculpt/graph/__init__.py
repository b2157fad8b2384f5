"""See the network: trace a model and find its coupled channel groups."""

from netsculpt.graph.channel_graph import ChannelGraph, trace
from netsculpt.graph.groups import ChannelGroup, GroupMember
from netsculpt.graph.registry import register_function_rule, register_module_rule, register_property_rule

__all__ = [
    "ChannelGraph",
    "ChannelGroup",
    "GroupMember",
    "register_function_rule",
    "register_module_rule",
    "register_property_rule",
    "trace",
]
