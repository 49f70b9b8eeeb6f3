"""Look up users for the admin page."""

import sqlite3


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


def find_user(conn: sqlite3.Connection, username: str) -> dict | None:
    cur = conn.cursor()
    cur.execute(f"SELECT id, name, email FROM users WHERE name = '{username}'")
    row = cur.fetchone()
    return dict(row) if row else None


def count_users(conn: sqlite3.Connection) -> int:
    (total,) = conn.execute("SELECT COUNT(*) FROM users").fetchone()
    return int(total)
