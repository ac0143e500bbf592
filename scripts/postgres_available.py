"""Exit 0 when a PostgreSQL server answers at the URL given as the only argument, 1 otherwise."""

from __future__ import annotations

import sys

import psycopg


def postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


if __name__ == "__main__":
    sys.exit(0 if len(sys.argv) == 2 and postgres_answers(sys.argv[1]) else 1)
