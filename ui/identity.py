"""Who acts in this browser session: set once in the sidebar, kept in the session, shown on every page.

Three ways to say who you are, all configured in ``.streamlit/secrets.toml`` (docs/SECURITY.md):

* **A local account** (proven): ``[curators]`` (may approve and reject) and ``[submitters]``, each
  ``name = "<pbkdf2 hash>"`` (:mod:`ui.accounts`); the older single ``curator_secret`` /
  ``CREV_CURATOR_SECRET`` is one curator account whose name is typed (recorded, not proven).
* **OpenID Connect** (proven by the team's identity provider): Streamlit's own ``st.login`` where
  ``[auth]`` is configured (``redirect_uri``, ``cookie_secret`` and the provider's ``client_id``,
  ``client_secret``, ``server_metadata_url``; https://docs.streamlit.io/develop/concepts/connections/authentication).
  The name is the provider's e-mail claim (``st.user.email``); the e-mails listed in
  ``oidc_curators = [...]`` are curators.
* **A declared name** (recorded, not proven), for submitting and launching, unless the server sets
  ``allow_declared_names = false``. A declared name can never approve, reject or cancel another's job
  unless it is that job's launcher.

The identity lives under ``st.session_state["identity"]`` (not a widget key, so changing pages keeps
it); the pages read it through :func:`current` and never offer a second name field.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

import streamlit as st

from ui import accounts

__all__ = ["SignInMethod", "Identity", "current", "curator_accounts", "submitter_accounts", "oidc_providers", "client_id",
           "sign_in", "sign_out", "declare", "sidebar", "limiter"]

_KEY = "identity"


class SignInMethod(str, enum.Enum):
    account = "account"    # a local account with a secret
    oidc = "oidc"          # Streamlit's OpenID Connect sign-in
    declared = "declared"  # a typed name, not proven


@dataclass(frozen=True)
class Identity:
    name: str
    curator: bool
    method: SignInMethod
    proven: bool

    def describe(self) -> str:
        role = "curator" if self.curator else "submitter"
        how = {SignInMethod.account: "local account", SignInMethod.oidc: "identity provider",
               SignInMethod.declared: "name recorded, not proven"}[self.method]
        return f"{role}, {how}"


def _secrets() -> dict:
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:
        return {}
    except Exception as exc:  # st.secrets raises its own parse error type for a malformed secrets.toml
        st.warning(f"Could not read the app's secrets (.streamlit/secrets.toml): {exc}")
        return {}


def curator_accounts() -> dict[str, str]:
    """Curator name -> secret. ``[curators]`` per-user accounts; the single ``curator_secret`` (or
    ``CREV_CURATOR_SECRET``) is the account ``"*"`` whose name the curator types."""
    sec = _secrets()
    accs = {str(k): str(v) for k, v in (sec.get("curators") or {}).items() if str(v)}
    single = sec.get("curator_secret") or os.environ.get("CREV_CURATOR_SECRET")
    if single:
        accs.setdefault("*", str(single))
    return accs


def submitter_accounts() -> dict[str, str]:
    return {str(k): str(v) for k, v in (_secrets().get("submitters") or {}).items() if str(v)}


def oidc_providers() -> list[str | None]:
    """The OpenID Connect providers ``st.login`` can use: ``[None]`` for a single provider configured
    in ``[auth]`` itself, the names of ``[auth.<name>]`` sections otherwise, ``[]`` if none."""
    auth = _secrets().get("auth") or {}
    if not isinstance(auth, dict) or not auth.get("redirect_uri") or not auth.get("cookie_secret"):
        return []
    if auth.get("client_id"):
        return [None]
    return [k for k, v in auth.items() if isinstance(v, dict) and v.get("client_id")]


def _declared_allowed() -> bool:
    return bool(_secrets().get("allow_declared_names", True))


def client_id() -> str:
    """The key wrong secrets are counted under: the connection's IP address, or ``local`` for
    connections from this machine (Streamlit gives no address for localhost)."""
    try:
        ip = st.context.ip_address
    except Exception:  # outside a script run
        ip = None
    return f"ip:{ip}" if ip else "local"


@st.cache_resource(show_spinner=False)
def limiter() -> accounts.SignInLimiter:
    """The server's one limiter of wrong secrets (shared by every session)."""
    return accounts.SignInLimiter()


def current() -> Identity | None:
    """This session's identity; an OpenID Connect sign-in is picked up on the first run after it."""
    ident = st.session_state.get(_KEY)
    if ident is None and oidc_providers():
        user = st.user
        if getattr(user, "is_logged_in", False) and user.get("email"):
            email = str(user.get("email")).strip()
            curators = {str(e).strip().casefold() for e in (_secrets().get("oidc_curators") or [])}
            ident = Identity(email, email.casefold() in curators, SignInMethod.oidc, True)
            st.session_state[_KEY] = ident
    return ident


def sign_in(name: str, secret: str) -> tuple[Identity | None, str]:
    """Check ``secret`` for the local account ``name`` (curators first, then submitters), under the
    client's and the server's limits (:class:`ui.accounts.SignInLimiter`); on success the identity
    is this session's."""
    name = name.strip()
    if not name:
        return None, "Type your name."
    client = client_id()
    wait = limiter().wait_for(client)
    if wait:
        return None, f"Too many wrong secrets from this connection: try again in {int(wait) + 1} s."
    curators, submitters = curator_accounts(), submitter_accounts()
    ident = None
    expected = curators.get(name, curators.get("*"))
    if expected is not None and accounts.secret_matches(secret, expected):
        ident = Identity(name, True, SignInMethod.account, name in curators)
    elif name in submitters and accounts.secret_matches(secret, submitters[name]):
        ident = Identity(name, False, SignInMethod.account, True)
    if ident is None:
        limiter().failed(client)
        return None, "That name and secret do not match an account: nothing changes."
    limiter().succeeded(client)
    st.session_state[_KEY] = ident
    return ident, ""


def declare(name: str) -> tuple[Identity | None, str]:
    name = " ".join(name.split())
    if not _declared_allowed():
        return None, "This server records only signed-in users: sign in with an account."
    if not name:
        return None, "Type the name to record with what you submit."
    ident = Identity(name, False, SignInMethod.declared, False)
    st.session_state[_KEY] = ident
    return ident, ""


def sign_out() -> None:
    ident = st.session_state.pop(_KEY, None)
    if ident is not None and ident.method is SignInMethod.oidc:
        st.logout()


def sidebar() -> None:
    """The 'You' box at the top of the sidebar on every page: who you are, or the ways to sign in."""
    sb = st.sidebar
    ident = current()
    if ident is not None:
        role = "curator" if ident.curator else "submitter"
        sb.info(f"Signed in as {role} **{ident.name}** ({ident.describe()}).")
        if sb.button("Sign out", key="sign_out"):
            sign_out()
            st.rerun()
        return
    with sb.expander("Sign in", expanded=False):
        curators, submitters = curator_accounts(), submitter_accounts()
        if curators or submitters:
            with st.form("curator_login"):
                st.markdown("**With an account** (curators approve and reject)")
                name = st.text_input("Account name", key="curator_name")
                secret = st.text_input("Account secret", type="password", key="curator_input")
                if st.form_submit_button("Sign in"):
                    ok, msg = sign_in(name, secret)
                    if ok:
                        st.rerun()
                    st.error(msg)
            if "*" in curators:
                st.caption("This server uses one shared curator secret: the name you type is recorded, but not proven. "
                           "Per-user accounts (`[curators]` in secrets.toml) prove it.")
        for provider in oidc_providers():
            label = "Sign in with your identity provider" + (f" ({provider})" if provider else "")
            if st.button(label, key=f"oidc_{provider or 'default'}"):
                st.login(provider) if provider else st.login()
        if _declared_allowed():
            with st.form("declare_name"):
                st.markdown("**Or give your name** (recorded with what you submit, not proven)")
                typed = st.text_input("Your name", key="user_name", placeholder="e.g. Jane Doe")
                if st.form_submit_button("Use this name"):
                    ok, msg = declare(typed)
                    if ok:
                        st.rerun()
                    st.error(msg)
