"""Real Google credentials for local endpoints: a service-account key whose token_uri is a fake.

The Google provider's hooks read ``google_cloud_default`` (``keyfile_dict``) and google-auth
signs a JWT and exchanges it at ``token_uri`` for an access token, exactly as in production.
Pointing ``token_uri`` at 127.0.0.1 lets the whole credential path run for real, and the
fakes can refuse requests that carry no bearer token.
"""

from __future__ import annotations

import json
import secrets
from functools import lru_cache
from typing import Any

from tests.fakes.http import FakeServer, HTTPError, Request, Response

TOKEN_PREFIX = "fake-token-"


@lru_cache(maxsize=1)
def _private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account_info(project: str, token_uri: str) -> dict[str, Any]:
    """A syntactically real service-account key (its private key is generated per test session)."""
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "fake-key-id",
        "private_key": _private_key_pem(),
        "client_email": f"airflow-ml-tests@{project}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }


def google_cloud_connection_uri(project: str, token_uri: str) -> str:
    """``AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT`` as JSON, with the key in ``keyfile_dict``."""
    extra = {"project": project, "keyfile_dict": json.dumps(service_account_info(project, token_uri))}
    return json.dumps({"conn_type": "google_cloud_platform", "extra": extra})


def add_token_route(server: FakeServer) -> None:
    """OAuth2 token endpoint: accepts the JWT-bearer grant google-auth sends; hands out a token."""

    def token(request: Request) -> Response:
        form = request.body.decode()
        if "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" not in form or "assertion=" not in form:
            raise HTTPError(400, "invalid_grant", "expected a JWT-bearer grant with an assertion")
        return Response(
            200, {"access_token": TOKEN_PREFIX + secrets.token_hex(8), "expires_in": 3600, "token_type": "Bearer"}
        )

    server.route("POST", r"/token", token)


def require_bearer(request: Request) -> None:
    """A Google API answers 401 to a request without an OAuth2 bearer token."""
    if not request.headers.get("authorization", "").startswith("Bearer " + TOKEN_PREFIX):
        raise HTTPError(401, "unauthorized", "Request is missing required authentication credential.")
