-- Removes a schedule; its recorded ticks go with it.
DELETE FROM {schema}.schedule WHERE name = %(name)s;
