"""Order lookups with parameterised queries."""

import sqlite3
from contextlib import closing


def orders_for(db_path: str, customer_id: int, limit: int = 50) -> list[tuple]:
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute(
            "SELECT id, total, placed_at FROM orders WHERE customer_id = ? ORDER BY placed_at DESC LIMIT ?",
            (customer_id, limit),
        )
        return rows.fetchall()


def add_order(conn: sqlite3.Connection, customer_id: int, total: int) -> int:
    cur = conn.execute("INSERT INTO orders (customer_id, total) VALUES (?, ?)", (customer_id, total))
    conn.commit()
    return int(cur.lastrowid or 0)
