(SELECT count(pg_notify(%(channel)s, due.queue))
 FROM (SELECT DISTINCT queue FROM moved) AS due)
