"""Sales report queries, sorted by a column the caller picks."""

import sqlite3

COLUMNS = ("region", "amount", "day")


def sales_report(db_path: str, region: str, order_by: str) -> list[tuple]:
    conn = sqlite3.connect(db_path)
    query = "SELECT region, amount, day FROM sales WHERE region = '%s' ORDER BY %s" % (region, order_by)
    return conn.execute(query).fetchall()


def total_for(conn: sqlite3.Connection, region: str) -> float:
    row = conn.execute("SELECT SUM(amount) FROM sales WHERE region = ?", (region,)).fetchone()
    return float(row[0] or 0.0)
