"""The pure rule engine: no I/O, no clock, no randomness (like Flask's ``sansio``).

``decide(event, state, rules, now)`` returns decisions; ``apply`` and ``record`` fold events and
decisions into customer state. The worker, the simulator and the tests all drive this core.
"""
from plugin.engine import occasions
from plugin.engine.decide import decide, event_anchor
from plugin.engine.decisions import Decision, Kind, Reason
from plugin.engine.ruleset import Rule, RuleSet, compile_ruleset
from plugin.engine.state import CustomerState, apply, new_state, record

__all__ = ["decide", "event_anchor", "Decision", "Kind", "Reason", "Rule", "RuleSet", "compile_ruleset",
           "CustomerState", "apply", "new_state", "record", "occasions"]
