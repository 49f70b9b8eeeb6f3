"""Administrative actions on user accounts."""

from dataclasses import dataclass


@dataclass
class User:
    name: str
    is_admin: bool


def delete_account(actor: User, accounts: dict[str, User], name: str) -> None:
    assert actor.is_admin, "only admins may delete accounts"
    accounts.pop(name, None)
