"""Client JWT verification (CDS Hooks 2.0 §Trusting CDS Clients): each rule, and its failure."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import respx
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.feedback_store import SqliteFeedbackStore
from cds_service.security import TrustedIssuer
from cds_service.settings import ConfigurationError, Settings
from tests import factories as f
from tests.jwt_helpers import ISS, JKU, KeyPair, hmac_token, token

DISCOVERY = "http://testserver/cds-services"
SELECT = "http://testserver/cds-services/vcf-imaging-order-select"
KEY = KeyPair("ES384")
RSA_KEY = KeyPair("RS384")


def app_with(tmp_path: Path, **settings: Any) -> TestClient:
    settings.setdefault(
        "trusted_issuers", [TrustedIssuer(iss=ISS, jku=[JKU], jwks={"keys": [KEY.public_jwk, RSA_KEY.public_jwk]})]
    )
    config = Settings(feedback_db_path=tmp_path / "f.db", require_client_auth=True, **settings)
    return TestClient(create_app(config, store=SqliteFeedbackStore(":memory:")))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_with(tmp_path) as c:
        yield c


def get(client: TestClient, bearer: str | None, url: str = DISCOVERY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return client.get(url, headers=headers)


def assert_401(response: httpx.Response) -> None:
    """Spec/best practice: respond 401 without details."""
    assert response.status_code == 401
    assert response.json() == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login", "diagnostics": "Unauthorized"}],
    }
    assert response.headers["www-authenticate"] == "Bearer"


# --------------------------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("key", [KEY, RSA_KEY], ids=["ES384", "RS384"])
def test_valid_es384_and_rs384_tokens_are_accepted(client: TestClient, key: KeyPair) -> None:
    assert get(client, token(key, DISCOVERY)).status_code == 200


def test_every_route_needs_the_token_but_health_and_preflight(client: TestClient) -> None:
    body = f.sandbox_order_select(prefetch=f.empty_prefetch())
    assert_401(client.post(SELECT, json=body))
    assert_401(client.post(f"{SELECT}/feedback", json={"feedback": []}))
    assert_401(client.get(DISCOVERY))
    assert client.get("/health").status_code == 200
    preflight = client.options(
        SELECT, headers={"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 200
    signed = client.post(SELECT, json=body, headers={"Authorization": f"Bearer {token(KEY, SELECT)}"})
    assert signed.status_code == 200


def test_401_reaches_browsers_with_cors_headers(client: TestClient) -> None:
    response = client.get(DISCOVERY, headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert response.status_code == 401 and response.headers["access-control-allow-origin"] == "*"


# --------------------------------------------------------------------------------------------- rejected


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer not.a.jwt", "Bearer abc"],
    ids=["absent", "empty", "basic", "no-token", "garbage", "short"],
)
def test_missing_or_malformed_authorization(client: TestClient, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    assert_401(client.get(DISCOVERY, headers=headers))


def test_alg_none_is_rejected(client: TestClient) -> None:
    unsigned = jwt.encode(
        {"iss": ISS, "aud": DISCOVERY, "exp": int(time.time()) + 60, "iat": int(time.time()), "jti": "n"},
        None,
        algorithm="none",
        headers={"kid": KEY.kid, "typ": "JWT"},
    )
    assert_401(get(client, unsigned))


@pytest.mark.parametrize("alg", ["HS256", "HS384"])
def test_hmac_is_rejected_even_with_the_public_key_as_secret(client: TestClient, alg: str) -> None:
    """The classic confusion attack: HMAC signed with the published public key."""
    for secret in (json.dumps(KEY.public_jwk).encode(), json.dumps(KEY.jwks()).encode()):
        assert_401(get(client, hmac_token(secret, alg, KEY.kid, DISCOVERY)))


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_other_asymmetric_algorithms_are_rejected(tmp_path: Path, alg: str) -> None:
    other = KeyPair(alg)
    with app_with(tmp_path, trusted_issuers=[TrustedIssuer(iss=ISS, jku=[JKU], jwks=other.jwks())]) as c:
        assert_401(get(c, token(other, DISCOVERY)))


def test_missing_kid_and_wrong_typ_are_rejected(client: TestClient) -> None:
    assert_401(get(client, token(KEY, DISCOVERY, header={"kid": None})))
    assert_401(get(client, token(KEY, DISCOVERY, header={"typ": None})))
    assert_401(get(client, token(KEY, DISCOVERY, header={"typ": "at+jwt"})))


def test_untrusted_issuer_is_rejected(client: TestClient) -> None:
    assert_401(get(client, token(KEY, DISCOVERY, iss="https://evil.example")))


def test_jku_not_in_the_allowlist_is_rejected(client: TestClient) -> None:
    assert_401(get(client, token(KEY, DISCOVERY, header={"jku": "https://evil.example/jwks.json"})))


def test_signature_by_another_key_with_the_same_kid_is_rejected(client: TestClient) -> None:
    impostor = KeyPair("ES384", kid=KEY.kid)
    assert_401(get(client, token(impostor, DISCOVERY)))


def test_unknown_kid_is_rejected(client: TestClient) -> None:
    assert_401(get(client, token(KeyPair("ES384"), DISCOVERY)))


def test_key_of_another_algorithm_under_the_same_kid_is_rejected(client: TestClient) -> None:
    """An RS384 token naming the EC key's kid must not verify."""
    confused = KeyPair("RS384", kid=KEY.kid)
    assert_401(get(client, token(confused, DISCOVERY)))


# ---------------------------------------------------------------------------------------------- audience


def test_aud_must_be_the_url_called(client: TestClient) -> None:
    assert_401(get(client, token(KEY, SELECT)))  # a token for another endpoint
    assert_401(get(client, token(KEY, "http://testserver/cds-services/")))
    assert get(client, token(KEY, [SELECT, DISCOVERY])).status_code == 200  # aud as an array


def test_public_base_url_behind_a_proxy(tmp_path: Path) -> None:
    with app_with(tmp_path, public_base_url="https://cds.example.org/") as c:
        assert get(c, token(KEY, "https://cds.example.org/cds-services")).status_code == 200
        assert_401(get(c, token(KEY, DISCOVERY)))


# ------------------------------------------------------------------------------------------------- times


def test_expired_token_is_rejected_and_leeway_applies(client: TestClient) -> None:
    now = int(time.time())
    assert_401(get(client, token(KEY, DISCOVERY, exp=now - 120, iat=now - 400)))
    assert get(client, token(KEY, DISCOVERY, exp=now - 10, iat=now - 300)).status_code == 200


def test_iat_in_the_future_is_rejected(client: TestClient) -> None:
    now = int(time.time())
    assert_401(get(client, token(KEY, DISCOVERY, iat=now + 600, exp=now + 900)))


def test_nbf_in_the_future_is_rejected_and_present_nbf_accepted(client: TestClient) -> None:
    """Epic sends nbf (five minutes before iat)."""
    now = int(time.time())
    assert_401(get(client, token(KEY, DISCOVERY, nbf=now + 600)))
    assert get(client, token(KEY, DISCOVERY, nbf=now - 300, sub="epic-client")).status_code == 200


def test_overlong_lifetime_is_rejected(client: TestClient) -> None:
    now = int(time.time())
    assert_401(get(client, token(KEY, DISCOVERY, iat=now, exp=now + 7200)))


@pytest.mark.parametrize("claim", ["exp", "iat", "jti", "iss", "aud"])
def test_required_claims(client: TestClient, claim: str) -> None:
    assert_401(get(client, token(KEY, DISCOVERY, drop=(claim,))))


def test_replayed_jti_is_rejected(client: TestClient) -> None:
    once = token(KEY, DISCOVERY, jti="replay-me")
    assert get(client, once).status_code == 200
    assert_401(get(client, once))
    assert get(client, token(KEY, DISCOVERY)).status_code == 200  # a new jti is fine


# ------------------------------------------------------------------------------------------ key sources


def test_jwks_fetched_from_the_allowlisted_jku_and_cached(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(JKU).mock(return_value=httpx.Response(200, json=KEY.jwks()))
        with app_with(tmp_path, trusted_issuers=[TrustedIssuer(iss=ISS, jku=[JKU])]) as c:
            assert get(c, token(KEY, DISCOVERY)).status_code == 200
            assert get(c, token(KEY, DISCOVERY)).status_code == 200
    assert route.call_count == 1


def test_key_rotation_on_unknown_kid(tmp_path: Path) -> None:
    rotated = KeyPair("ES384")
    answers = iter([KEY.jwks(), rotated.jwks()])
    with respx.mock() as mock:
        route = mock.get(JKU).mock(side_effect=lambda _: httpx.Response(200, json=next(answers)))
        settings = {"trusted_issuers": [TrustedIssuer(iss=ISS, jku=[JKU])], "jwks_min_refetch_seconds": 0}
        with app_with(tmp_path, **settings) as c:
            assert get(c, token(KEY, DISCOVERY)).status_code == 200
            assert get(c, token(rotated, DISCOVERY)).status_code == 200
    assert route.call_count == 2


def test_unreachable_jku_rejects(tmp_path: Path) -> None:
    with respx.mock() as mock:
        mock.get(JKU).mock(side_effect=httpx.ConnectError("offline"))
        with app_with(tmp_path, trusted_issuers=[TrustedIssuer(iss=ISS, jku=[JKU])]) as c:
            assert_401(get(c, token(KEY, DISCOVERY)))


def test_pinned_jwks_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(KEY.jwks()))
    with (
        respx.mock(assert_all_mocked=True),
        app_with(tmp_path, trusted_issuers=[TrustedIssuer(iss=ISS, jku=[JKU], jwks_file=path)]) as c,
    ):
        assert get(c, token(KEY, DISCOVERY)).status_code == 200  # no fetch: the jku is unreachable offline


def test_the_published_sandbox_key_can_be_pinned_for_development() -> None:
    """docs/sandbox-jwks.json holds the sandbox's ES384 public key (kid 44823f3d-...)."""
    issuer = TrustedIssuer(
        iss="https://sandbox.cds-hooks.org",
        jku=["https://sandbox.cds-hooks.org/.well-known/jwks.json"],
        jwks_file=Path(__file__).parents[2] / "docs" / "sandbox-jwks.json",
    )
    keys = jwt.PyJWKSet.from_dict(issuer.pinned_keys()).keys
    assert [(k.key_id, k.algorithm_name) for k in keys] == [("44823f3d-0b01-4a6c-a80e-b9d3e8a7226f", "ES384")]


# ---------------------------------------------------------------------------------------------- profiles


def test_production_refuses_to_start_without_a_trusted_issuer(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no issuer is trusted"):
        create_app(Settings(feedback_db_path=tmp_path / "f.db", profile="production"))


def test_production_verifies_tokens_and_never_reads_fhir_without_one(tmp_path: Path) -> None:
    settings = Settings(
        feedback_db_path=tmp_path / "f.db",
        profile="production",
        trusted_issuers=[TrustedIssuer(iss=ISS, jwks=KEY.jwks())],
    )
    assert settings.auth_enabled and not settings.tokenless_fetch
    with TestClient(create_app(settings, store=SqliteFeedbackStore(":memory:"))) as c:
        assert_401(c.get(DISCOVERY))
        body = f.sandbox_order_select()  # fhirServer, no fhirAuthorization, no prefetch
        response = c.post(
            SELECT, json=body, headers={"Authorization": f"Bearer {token(KEY, SELECT, header={'jku': None})}"}
        )
    assert response.status_code == 412


def test_development_default_is_loopback_without_auth_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(feedback_db_path=tmp_path / "f.db")
    assert settings.host == "127.0.0.1" and not settings.auth_enabled
    with caplog.at_level("WARNING", logger="cds_service"), TestClient(create_app(settings)) as c:
        assert c.get("/cds-services").status_code == 200
    assert any("client authentication is OFF" in r.getMessage() for r in caplog.records)


def test_serve_command_refuses_to_start_in_production_without_issuers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cds_service import cli
    from cds_service.settings import get_settings

    monkeypatch.setenv("CDS_PROFILE", "production")
    get_settings.cache_clear()
    try:
        assert cli.main(["serve"]) == 2
    finally:
        get_settings.cache_clear()
    assert "refusing to start" in capsys.readouterr().err


def test_trusted_issuers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CDS_TRUSTED_ISSUERS",
        json.dumps(
            [
                {
                    "iss": "https://sandbox.cds-hooks.org",
                    "jku": ["https://sandbox.cds-hooks.org/.well-known/jwks.json"],
                    "jwks_file": "docs/sandbox-jwks.json",
                }
            ]
        ),
    )
    settings = Settings()
    assert settings.trusted_issuers[0].jwks_file == Path("docs/sandbox-jwks.json")


def test_issuer_without_any_key_source_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="needs jku URLs, jwks or jwks_file"):
        TrustedIssuer(iss=ISS)
