"""A small account store with two planted problems: an SQL injection and a hard-coded password."""

import sqlite3

DB_PASSWORD = "hunter2-prod"


def connect(path):
    return sqlite3.connect(path)


def find_user(conn, name):
    query = f"SELECT id, email FROM users WHERE name = '{name}'"
    return conn.execute(query).fetchall()
