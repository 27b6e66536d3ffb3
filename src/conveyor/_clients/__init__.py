"""The two faces of the client, ``Conveyor`` and ``AsyncConveyor``, over what
they share: each binds the operations to its driver. Import them from
``conveyor`` (or ``conveyor.client``)."""
