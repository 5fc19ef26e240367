"""The Snap knowledge table: complete, consistent with snap-capi facts, and every template fillable."""

from __future__ import annotations

import pytest

from snapwatch.diagnose import facts as knowledge
from snapwatch.model import Api, FindingCode, Placement, Severity, TokenKind

VALUES = {name: f"<{name}>" for name in knowledge.FIELDS}


def test_every_finding_code_has_facts() -> None:
    assert set(knowledge.FINDINGS) == set(FindingCode)
    for code, facts in knowledge.FINDINGS.items():
        assert facts.title and facts.remediation, code


@pytest.mark.parametrize("code", list(FindingCode))
def test_templates_use_only_known_placeholders_and_fill(code: FindingCode) -> None:
    facts = knowledge.FINDINGS[code]
    for template in (facts.title, *facts.remediation):
        assert knowledge.placeholders(template) <= knowledge.FIELDS, (code, template)
    title = knowledge.title(code, VALUES)
    steps = knowledge.remediation(code, VALUES)
    assert "{" not in title and all("{" not in s for s in steps)


def test_a_missing_value_is_an_error_not_a_blank() -> None:
    with pytest.raises(KeyError):
        knowledge.fill("restart {unit}", {})


def test_every_token_kind_is_explained() -> None:
    assert set(knowledge.TOKEN_KINDS) == set(TokenKind)
    # The Canvas S2S JWT is the normal CAPI token: its explanation must say so, not call it wrong.
    canvas = knowledge.TOKEN_KINDS[TokenKind.CANVAS_S2S]
    assert "Conversions API" in canvas and "does not expire" in canvas


def test_endpoints_and_where_the_token_goes() -> None:
    v3, v2 = knowledge.ENDPOINTS[Api.V3], knowledge.ENDPOINTS[Api.V2]
    assert v3.placement is Placement.QUERY and v3.deprecated is None
    assert v3.send_path == "/v3/{pixel}/events" and v3.validate_path == "/v3/{pixel}/events/validate"
    assert v2.placement is Placement.HEADER and v2.deprecated and "2025" in v2.deprecated
    assert v2.send_path == "/v2/conversion"
    assert knowledge.TOKEN_QUERY_PARAMETER == "access_token"


def test_business_manager_path_and_who_may_generate() -> None:
    assert knowledge.BUSINESS_MANAGER_PATH == "Business Manager → Business Details → Conversions API Tokens"
    steps = "\n".join(knowledge.remediation(FindingCode.TOKEN_REJECTED_FOR_PIXEL, VALUES))
    assert "Organization Admin" in steps and "<bm_generate>" in steps and "<pixel>" in steps


def test_severities_follow_the_contract_intent() -> None:
    f = knowledge.FINDINGS
    assert f[FindingCode.TOKEN_DRIFT].severity is Severity.CRITICAL
    assert f[FindingCode.AUTH_PLACEMENT].severity is Severity.CRITICAL
    assert f[FindingCode.PROBE_FAILED].severity is Severity.INFO
    assert f[FindingCode.PROBE_ACCEPTED].severity is Severity.INFO
    assert "not your token" in f[FindingCode.SERVER_ERRORS].title


def test_drift_remediation_names_the_restart_command() -> None:
    steps = knowledge.remediation(FindingCode.TOKEN_DRIFT, {**VALUES, "restart": "sudo systemctl restart x.service"})
    assert any("sudo systemctl restart x.service" in s for s in steps)
