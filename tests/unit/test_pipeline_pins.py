"""Pins for the pipeline: the policy's fingerprint, plugin labels, and the edges of the
learned choice (see RELIABILITY.md, "Mutation testing")."""

from __future__ import annotations

from adaptive_runtime.engines.confidence import ConfidenceParams
from adaptive_runtime.engines.learning import Tally
from adaptive_runtime.engines.pipeline import ENGINE_VERSION, PluginSet, Policy, choose
from adaptive_runtime.records import LearningPolicy, PluginRef, Rule


def test_the_default_policy_s_fingerprint_is_pinned() -> None:
    """Engine 2, the default rules, context map and learning policy: this hash (the one the
    README's explain shows); plugins enter it, and so does every learning knob."""
    assert 2 == ENGINE_VERSION
    policy = Policy()
    assert "c4b546169ec839b0" == policy.ruleset
    assert ConfidenceParams() == policy.confidence
    assert () == policy.custom_rules
    assert "Policy(ruleset='c4b546169ec839b0', custom_rules=0)" == repr(policy)
    with_plugin = Policy(plugins=PluginSet(refs=(PluginRef("trading", "0.1.0"),)))
    assert "9cc9459dd06a5f84" == with_plugin.ruleset
    assert with_plugin.ruleset not in (policy.ruleset,)
    assert Policy(learning=LearningPolicy(fade=0.9)).ruleset != policy.ruleset


def test_plugin_sets_name_themselves_by_version() -> None:
    refs = (PluginRef("a", "1.0"), PluginRef("b", "2"))
    plugins = PluginSet(refs=refs)
    assert (refs, ("a==1.0", "b==2")) == (plugins.refs, plugins.labels)
    assert "PluginSet(a==1.0, b==2)" == repr(plugins)
    assert "PluginSet(none)" == repr(PluginSet())


def _policy(*rules: tuple[str, str | None, float, str, str], **learning: object) -> Policy:
    return Policy(rules=list(rules), learning=LearningPolicy(**learning))  # type: ignore[arg-type]


def test_the_walk_meets_min_conf_exactly_on_it() -> None:
    policy = _policy(("c", "low", 0.7, "a", "r"), alternatives=False)
    record = {
        "b": Tally(1.0, 0.0)
    }  # the scope has a record; "a" has none: its estimate is the prior
    match, confidence, _ = choose(policy, record, "c", "low", 0.7)
    assert ("a", 0.7) == (match.action, confidence)
    below = choose(policy, record, "c", "low", 0.6999)[0]
    assert ("monitor_and_wait", "fallback", "no_matching_rule") == (
        below.action,
        below.rule,
        below.reason,
    )


def test_a_gated_alternative_competes_exactly_at_its_gate_and_the_loop_goes_on() -> None:
    policy = _policy(
        ("c", "low", 0.0, "a", "r"),
        ("c", "low", 0.9, "gated", "r"),
        ("c", "low", 0.5, "b", "r"),
        respect_gates=True,
    )
    record = {"a": Tally(0.0, 10.0)}  # "a" keeps failing: its estimate falls
    # "gated" (estimate 0.5, under its 0.9 gate) is passed over, and the loop goes on to "b"
    match, confidence, instead = choose(policy, record, "c", "low", 0.5)
    assert ("b", 0.5, "a") == (match.action, confidence, instead)
    exactly = _policy(("c", "low", 0.0, "a", "r"), ("c", "low", 0.5, "b", "r"), respect_gates=True)
    assert "b" == choose(exactly, record, "c", "low", 0.5)[0].action  # estimate == gate: in


def test_rules_from_packs_and_custom_rules_are_what_the_walk_sees() -> None:
    rule = Rule(context="c", risk=None, min_conf=0.0, action="packed", reason="p")
    policy = Policy(plugins=PluginSet(refs=(PluginRef("p", "1"),), packs=[("p", (rule,))]))
    assert "packed" == choose(policy, {"x": Tally(1.0, 0.0)}, "c", "low", 0.5)[0].action
