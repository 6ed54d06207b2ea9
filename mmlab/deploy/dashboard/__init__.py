"""The clinician and supervisor dashboard (issue 13): a Panel app served by ``mmlab dashboard``.

* :mod:`.tables` -- the input tables' schema (the contract with the systems),
  :func:`check_tables` / :func:`check_risk_table` / :func:`check_alert_table`, and
  :func:`synthetic_tables` from the ``icu_ward`` and ``stress_protocol`` scenarios;
* :mod:`.store` -- acknowledgements in SQLite (:class:`AckStore`), users with scrypt-hashed
  passwords, roles and wards (:class:`Users`), the cookie secret;
* :mod:`.auth` -- the login page and signed cookie (a Bokeh auth module);
* :mod:`.app` -- the Panel document (ward view, patient view, acknowledgements), filtered to
  the user's wards on the server;
* :mod:`.server` -- start / stop ``panel serve`` with all of the above.

Panel and Bokeh are imported only inside the functions that build the app.
"""

from mmlab.deploy.dashboard.store import AckStore, Users, allowed, cookie_secret, hash_password, verify_password
from mmlab.deploy.dashboard.tables import (ALERT_COLUMNS, RISK_COLUMNS, SIGNAL_COLUMNS, alerts_from_risk,
                                           alerts_from_stress, check_alert_table,
                                           check_risk_table, check_signal_table, check_tables, read_tables,
                                           synthetic_tables, write_tables)

__all__ = ["AckStore", "Users", "allowed", "cookie_secret", "hash_password", "verify_password",
           "ALERT_COLUMNS", "RISK_COLUMNS", "SIGNAL_COLUMNS", "alerts_from_risk", "alerts_from_stress", "check_alert_table", "check_risk_table",
           "check_signal_table", "check_tables", "read_tables", "synthetic_tables", "write_tables", "demo"]


def demo(folder, n_icu: int = 12, n_stress: int = 2, seed: int = 0, hours: float | None = None) -> dict:
    """Write synthetic tables into ``folder`` and (if absent) demo users; returns their passwords.

    Users: ``supervisor`` (all wards), ``clin_h1`` (ward H1), ``clin_h2`` (ward H2),
    ``stress_lab`` (ward S1); the passwords are returned, never written.
    """
    import secrets
    from pathlib import Path

    write_tables(folder, *synthetic_tables(n_icu=n_icu, n_stress=n_stress, seed=seed, hours=hours))
    users = Users(Path(folder) / "users.json")
    made = {}
    for name, role, wards in (("supervisor", "supervisor", ["*"]), ("clin_h1", "clinician", ["H1"]),
                              ("clin_h2", "clinician", ["H2"]), ("stress_lab", "clinician", ["S1"])):
        if users.get(name) is None:
            made[name] = secrets.token_urlsafe(9)
            users.add(name, made[name], role, wards)
    return made
