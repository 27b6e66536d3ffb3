"""Send jobs inside a SQLAlchemy ``Session``'s transaction.

Conveyor joins a caller's transaction through its psycopg connection (``conn=``);
a Session on psycopg 3 (``postgresql+psycopg://``) has one under it::

    from conveyor.contrib.sqlalchemy import psycopg_connection

    with Session(engine) as session, session.begin():
        session.add(Order(id=order_id))
        cv.send("fulfil-order", {"order_id": order_id}, conn=psycopg_connection(session))

The job commits or rolls back with the Session. :func:`async_psycopg_connection`
does the same for an ``AsyncSession`` and :class:`~conveyor.AsyncConveyor`.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Dialect, PoolProxiedConnection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from conveyor.errors import ConfigurationError


def _driver_connection(raw: PoolProxiedConnection, dialect: Dialect, kind: type[Any]) -> Any:
    driver = raw.driver_connection
    if not isinstance(driver, kind):
        raise ConfigurationError(
            f"Conveyor joins a Session's transaction through psycopg 3, but this one runs "
            f"on {dialect.name}+{dialect.driver}; use an engine URL that starts with postgresql+psycopg://"
        )
    return driver


def psycopg_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under ``session``'s transaction (which this begins if
    it has not yet), to pass to a :class:`~conveyor.Conveyor` method as ``conn=``.

    Raises :class:`~conveyor.errors.ConfigurationError` when the Session's engine
    does not use psycopg 3.
    """
    connection = session.connection()
    return _driver_connection(  # type: ignore[no-any-return]
        connection.connection, connection.dialect, psycopg.Connection)


async def async_psycopg_connection(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    """The psycopg ``AsyncConnection`` under an ``AsyncSession``'s transaction, to
    pass to an :class:`~conveyor.AsyncConveyor` method as ``conn=``::

        async with AsyncSession(engine) as session, session.begin():
            await acv.send("q", data, conn=await async_psycopg_connection(session))
    """
    connection = await session.connection()
    return _driver_connection(  # type: ignore[no-any-return]
        await connection.get_raw_connection(), connection.dialect, psycopg.AsyncConnection)
