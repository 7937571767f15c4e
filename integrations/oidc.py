"""An OpenID Connect identity provider (NHS CIS2): discovery, the code exchange, and the
ID token's verification.

The authorization code flow with PKCE (S256), ``state`` and ``nonce``. Authlib builds
the authorization URL and makes the token request; joserfc checks the ID token: its
signature against the provider's published keys (JWKS), then ``iss``, ``aud`` (and
``azp``), ``exp``, ``iat`` and ``nonce``. Every HTTP call has a timeout, and every
failure becomes one `OIDCError` whose ``reason`` is a short word for the access log and
whose message says what an admin can do.

    provider = OpenIDProvider(OIDCSettings("https://am.nhs.uk/openam/oauth2/realms/root/realms/oidc",
                                           "goldenhour", "secret"))
    started = provider.authorization("https://goldenhour.example.nhs.uk/login/sso/callback")
    # ... the browser comes back with ?code=&state=
    identity = provider.identify(code, redirect_uri, started.code_verifier, started.nonce)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet

DISCOVERY_PATH = "/.well-known/openid-configuration"
# Asymmetric signatures only: an HS256 ID token would be signed with our own client
# secret, and "none" is no signature at all.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512")
METADATA_SECONDS = 3600  # how long discovery and the keys are kept before asking again
KEY_REFRESH_SECONDS = 60  # at most one extra JWKS fetch a minute for an unknown key id
RETRY_STATUSES = frozenset({502, 503, 504})


class OIDCError(Exception):
    """A sign-in through the identity provider failed.

    ``reason`` is one short word for the access log (timeout, unreachable, discovery,
    issuer, client, code, signature, key, alg, iss, aud, azp, exp, iat, nonce, claims,
    refused); the message says what happened and what to do.
    """

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class OIDCSettings:
    issuer: str  # exactly as the provider's discovery document names itself
    client_id: str
    client_secret: str
    label: str = "Sign in with NHS CIS2"
    scopes: str = "openid email profile"
    timeout: float = 5.0  # seconds, for connect and for each read
    leeway: int = 60  # seconds of clock difference allowed on exp and iat
    max_age: int = 600  # seconds: an ID token issued longer ago than this is refused


def settings_from(config: Mapping) -> OIDCSettings | None:
    """The provider's settings from the app's config, or None when no issuer is set.

    Makes no request; config.py has checked the values at start-up.
    """
    if not config.get("OIDC_ISSUER"):
        return None
    return OIDCSettings(
        issuer=config["OIDC_ISSUER"], client_id=config["OIDC_CLIENT_ID"],
        client_secret=config["OIDC_CLIENT_SECRET"], label=config["OIDC_LABEL"],
        scopes=config["OIDC_SCOPES"], timeout=float(config["OIDC_TIMEOUT_SECONDS"]))


@dataclass(frozen=True)
class Authorization:
    """Where to send the browser, and what to keep (in the signed session) until it is
    back: the ``state`` it must return, the ``nonce`` the ID token must carry, and the
    PKCE ``code_verifier`` for the token request."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class Identity:
    """What a verified ID token says about the person."""

    issuer: str
    subject: str
    email: str  # lower case; "" when the token has none
    email_verified: bool
    name: str


class OpenIDProvider:
    """One identity provider, found by discovery from its issuer URL.

    ``session`` is the requests.Session for discovery and keys (a new one by default);
    the token request goes through Authlib's own session, with the same timeout.
    Discovery and keys are cached for an hour; an ID token signed with a key id the
    cache does not know fetches the keys again (key rotation), at most once a minute.
    """

    def __init__(self, settings: OIDCSettings, session: requests.Session | None = None):
        self.settings = settings
        self.session = session or requests.Session()
        self._lock = threading.Lock()
        self._metadata: dict | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    # -- the outside calls -------------------------------------------------------

    def _get_json(self, url: str, what: str) -> dict:
        """GET a JSON object; one retry on a connection that never opened or a 502-504.

        Raises OIDCError (timeout, unreachable, discovery).
        """
        for attempt in (1, 2):
            try:
                response = self.session.get(url, timeout=self.settings.timeout,
                                            headers={"Accept": "application/json"})
            except requests.Timeout:
                raise self._timeout() from None
            except requests.ConnectionError:
                if attempt == 2:
                    raise self._unreachable() from None
                continue
            if response.status_code in RETRY_STATUSES and attempt == 1:
                continue
            break
        if response.status_code != 200:
            raise OIDCError(f"the identity provider's {what} at {url} answered HTTP "
                            f"{response.status_code}: check GOLDENHOUR_OIDC_ISSUER",
                            reason="discovery")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OIDCError(f"the identity provider's {what} at {url} is not a JSON "
                            "object: check GOLDENHOUR_OIDC_ISSUER", reason="discovery")
        return body

    def _timeout(self) -> OIDCError:
        return OIDCError(f"the identity provider at {self.issuer} did not answer within "
                         f"{self.settings.timeout:g} s", reason="timeout")

    def _unreachable(self) -> OIDCError:
        return OIDCError(f"the identity provider at {self.issuer} could not be reached: "
                         "check GOLDENHOUR_OIDC_ISSUER and this server's outbound network",
                         reason="unreachable")

    def metadata(self) -> dict:
        """The discovery document (cached for an hour).

        Raises OIDCError when it cannot be fetched, names another issuer, or lacks an
        endpoint the code flow needs.
        """
        with self._lock:
            if self._metadata and time.monotonic() - self._metadata_at < METADATA_SECONDS:
                return self._metadata
        document = self._get_json(self.issuer.rstrip("/") + DISCOVERY_PATH,
                                  "discovery document")
        if document.get("issuer") != self.issuer:
            raise OIDCError(f"the identity provider at {self.issuer} calls itself "
                            f"{document.get('issuer')!r}: set GOLDENHOUR_OIDC_ISSUER to "
                            "exactly that", reason="issuer")
        missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")
                   if not isinstance(document.get(k), str)]
        if missing:
            raise OIDCError(f"the identity provider's discovery document has no "
                            f"{', '.join(missing)}", reason="discovery")
        with self._lock:
            self._metadata, self._metadata_at = document, time.monotonic()
        return document

    def _key_set(self, refresh: bool = False) -> KeySet:
        with self._lock:
            fresh = time.monotonic() - self._keys_at < (
                KEY_REFRESH_SECONDS if refresh else METADATA_SECONDS)
            if self._keys is not None and fresh:
                return self._keys
        url = self.metadata()["jwks_uri"]
        try:
            keys = KeySet.import_key_set(self._get_json(url, "key set (JWKS)"))
        except (JoseError, ValueError, KeyError, TypeError):
            raise OIDCError(f"the identity provider's key set at {url} holds no key we "
                            "can read", reason="key") from None
        with self._lock:
            self._keys, self._keys_at = keys, time.monotonic()
        return keys

    def authorization(self, redirect_uri: str) -> Authorization:
        """Start a sign-in: the authorization URL with a fresh state, nonce and PKCE
        challenge. Raises OIDCError when discovery fails."""
        endpoint = self.metadata()["authorization_endpoint"]
        verifier = generate_token(64)
        nonce = generate_token(32)
        client = OAuth2Session(self.settings.client_id, scope=self.settings.scopes,
                               redirect_uri=redirect_uri, code_challenge_method="S256")
        url, state = client.create_authorization_url(endpoint, code_verifier=verifier,
                                                     nonce=nonce)
        return Authorization(url=url, state=state, nonce=nonce, code_verifier=verifier)

    def exchange(self, code: str, redirect_uri: str, code_verifier: str) -> str:
        """Trade the authorization code for tokens; return the ID token.

        Never retried: a code is good for one use, and a request that timed out may
        have used it. Raises OIDCError (timeout, unreachable, client, code, claims).
        """
        endpoint = self.metadata()["token_endpoint"]
        client = OAuth2Session(self.settings.client_id, self.settings.client_secret,
                               redirect_uri=redirect_uri, default_timeout=self.settings.timeout)
        try:
            with client:
                token = client.fetch_token(endpoint, grant_type="authorization_code",
                                           code=code, code_verifier=code_verifier)
        except requests.Timeout:
            raise self._timeout() from None
        except requests.ConnectionError:
            raise self._unreachable() from None
        except requests.HTTPError as exc:
            raise OIDCError(f"the identity provider's token endpoint answered HTTP "
                            f"{exc.response.status_code}", reason="unreachable") from None
        except OAuthError as exc:
            raise _token_error(exc.error, exc.description) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise OIDCError("the identity provider sent no ID token: the client must ask "
                            "for the openid scope (GOLDENHOUR_OIDC_SCOPES)", reason="claims")
        return id_token

    def identify(self, code: str, redirect_uri: str, started: Authorization,
                 returned_issuer: str | None = None) -> Identity:
        """Finish a sign-in the browser came back from: exchange ``code`` and verify the
        ID token against what ``started`` kept. ``returned_issuer`` is the callback's
        ``iss`` parameter (RFC 9207), which must name this provider when it is sent.

        The caller has checked ``state``. Raises OIDCError.
        """
        if returned_issuer is not None and returned_issuer != self.issuer:
            raise OIDCError(f"the sign-in came back from {returned_issuer!r}, not "
                            f"{self.issuer} (iss)", reason="iss")
        id_token = self.exchange(code, redirect_uri, started.code_verifier)
        return self.verify(id_token, started.nonce)

    # -- the ID token ------------------------------------------------------------

    def verify(self, id_token: str, nonce: str) -> Identity:
        """Check the ID token's signature (JWKS), iss, aud/azp, exp, iat and nonce.

        Raises OIDCError with the reason of the first check that fails.
        """
        try:
            header = jws.extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError, TypeError):
            raise OIDCError("the identity provider's ID token is not a signed JWT",
                            reason="signature") from None
        allowed = set(SIGNING_ALGORITHMS) & set(
            self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"])
        alg = header.get("alg")
        if alg not in allowed:
            raise OIDCError(f"the ID token is signed with {alg!r}; goldenhour accepts "
                            f"{', '.join(sorted(allowed))}", reason="alg")
        key = self._signing_key(header.get("kid"))
        try:
            claims = jwt.decode(id_token, key, algorithms=[alg]).claims
        except BadSignatureError:
            raise OIDCError("the ID token's signature does not verify against the identity "
                            "provider's published keys (JWKS): it was altered, or is forged",
                            reason="signature") from None
        except (JoseError, ValueError, TypeError):
            raise OIDCError("the identity provider's ID token could not be read",
                            reason="signature") from None
        self._check_claims(claims, nonce)
        email = claims.get("email")
        return Identity(issuer=claims["iss"], subject=claims["sub"],
                        email=email.strip().lower() if isinstance(email, str) else "",
                        email_verified=claims.get("email_verified") is True,
                        name=str(claims.get("name") or ""))

    def _signing_key(self, kid: str | None):
        for refresh in (False, True):
            keys = self._key_set(refresh=refresh)
            if kid is None and len(keys.keys) == 1:
                return keys.keys[0]
            for key in keys.keys:
                if key.kid == kid:
                    return key
        raise OIDCError(f"the ID token was signed with a key ({kid!r}) the identity "
                        "provider does not publish in its JWKS", reason="key")

    def _check_claims(self, claims: dict, nonce: str) -> None:
        s = self.settings
        missing = sorted(k for k in ("iss", "sub", "aud", "exp", "iat", "nonce")
                         if claims.get(k) in (None, ""))
        if missing:
            raise OIDCError(f"the ID token lacks {', '.join(missing)}", reason="claims")
        if claims["iss"] != s.issuer:
            raise OIDCError(f"the ID token was issued by {claims['iss']!r}, not "
                            f"{s.issuer} (iss)", reason="iss")
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if s.client_id not in audience:
            raise OIDCError("the ID token was for another client (aud): check "
                            "GOLDENHOUR_OIDC_CLIENT_ID", reason="aud")
        if (len(audience) > 1 or "azp" in claims) and claims.get("azp") != s.client_id:
            raise OIDCError("the ID token was handed to another client (azp)", reason="azp")
        registry = jwt.JWTClaimsRegistry(leeway=s.leeway, nonce={"essential": True,
                                                                 "value": nonce})
        try:
            registry.validate(claims)
        except JoseError as exc:
            claim = getattr(exc, "claim", "")
            if claim == "exp":
                raise OIDCError("the ID token has expired (exp): sign in again; if it keeps "
                                "happening, check this server's clock", reason="exp") from None
            if claim == "nonce":
                raise OIDCError("the ID token was not issued for this sign-in (nonce): sign "
                                "in again", reason="nonce") from None
            if claim == "iat":
                raise OIDCError("the ID token was issued in the future (iat): check the "
                                "clocks of this server and the identity provider",
                                reason="iat") from None
            raise OIDCError(f"the ID token's {claim or 'claims'} did not check out",
                            reason="claims") from None
        if claims["iat"] < time.time() - s.max_age - s.leeway:
            raise OIDCError(f"the ID token was issued more than {s.max_age // 60} minutes "
                            "ago (iat): sign in again", reason="iat")


def _token_error(error: str, description: str | None) -> OIDCError:
    """The token endpoint's OAuth error in words (RFC 6749 section 5.2)."""
    said = f" ({description})" if description else ""
    if error in {"invalid_client", "unauthorized_client"}:
        return OIDCError("the identity provider refused goldenhour's client credentials"
                         f"{said}: check GOLDENHOUR_OIDC_CLIENT_ID and "
                         "GOLDENHOUR_OIDC_CLIENT_SECRET", reason="client")
    if error == "invalid_grant":
        return OIDCError(f"the identity provider refused the sign-in code{said}: it expired "
                         "or was used already; sign in again", reason="code")
    return OIDCError(f"the identity provider's token endpoint said {error}{said}",
                     reason="refused")
