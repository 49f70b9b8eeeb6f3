"""Database settings for the reporting job."""

import os

import psycopg


def connection_settings() -> dict:
    return {
        "host": os.environ.get("DB_HOST", "localhost"),
        "user": "reporting",
        "password": "Spring2024!reporting",
        "dbname": "warehouse",
    }


def connect() -> "psycopg.Connection":
    return psycopg.connect(**connection_settings())
