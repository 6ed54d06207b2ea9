"""Bokeh auth module for ``panel serve --auth-module``: a login page, a signed ``user``
cookie, and ``get_user`` for every request (pages and the websocket).

The data folder comes from ``MMLAB_DASHBOARD_DATA`` (set by :func:`~mmlab.deploy.dashboard.server.command`);
users are checked against its ``users.json`` (:class:`~mmlab.deploy.dashboard.store.Users`).
Wrong or missing credentials get the login page and nothing else.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from tornado.web import RequestHandler

from mmlab.deploy.dashboard.store import Users

login_url = "/login"
logout_url = "/logout"
COOKIE = "user"
MAX_AGE_DAYS = 1

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>mmlab dashboard: sign in</title></head>
<body style="font-family:sans-serif;max-width:24em;margin:4em auto">
<h2>mmlab dashboard</h2><p id="msg">{msg}</p>
<form method="post" action="/login">
<label>User <input name="username" id="username" autocomplete="username"></label><br><br>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password"></label><br><br>
<input type="hidden" name="next" value="{next}">
<button type="submit" id="signin">Sign in</button></form></body></html>"""


def _users() -> Users:
    return Users(Path(os.environ["MMLAB_DASHBOARD_DATA"]) / "users.json")


def get_user(request_handler):
    """The signed-in user's name, or ``None`` (then Bokeh redirects to the login page)."""
    raw = request_handler.get_secure_cookie(COOKIE, max_age_days=MAX_AGE_DAYS)
    if not raw:
        return None
    name = raw.decode("utf-8")
    return name if _users().get(name) else None


def _safe_next(value: str | None) -> str:
    value = value or "/app"
    ok = value.startswith("/") and not value.startswith(("//", "/\\")) and "\\" not in value
    return value if ok else "/app"


class LoginHandler(RequestHandler):
    def _page(self, msg: str = "Sign in.", status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.write(_PAGE.format(msg=html.escape(msg), next=html.escape(_safe_next(self.get_argument("next", None)))))

    def get(self):
        self._page()

    def post(self):
        name = self.get_argument("username", "")
        user = _users().authenticate(name, self.get_argument("password", ""))
        if user is None:
            self.clear_cookie(COOKIE)
            self._page("Wrong user name or password.", status=401)
            return
        self.set_secure_cookie(COOKIE, user["name"], expires_days=MAX_AGE_DAYS, httponly=True, samesite="Strict")
        self.redirect(_safe_next(self.get_argument("next", None)))


class LogoutHandler(RequestHandler):
    def get(self):
        self.clear_cookie(COOKIE)
        self.redirect(login_url)
