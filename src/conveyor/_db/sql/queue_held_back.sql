-- Whether a queue has due jobs that a claim left waiting (held back by its
-- limits, or by pauses): the claimer then looks again soon rather than at its poll.
SELECT EXISTS (
    SELECT 1 FROM {schema}.job AS j
    WHERE j.queue = %(queue)s AND j.state < 'active'
      AND j.start_after <= now() AND j.keep_until > now()
) AS held_back;
