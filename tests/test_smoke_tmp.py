def test_send_and_get(cv):
    job_id = cv.send("q", {"a": 1})
    assert cv.get_job(job_id).data == {"a": 1}

async def test_async_send_and_get(acv):
    job_id = await acv.send("q", {"a": 1})
    assert (await acv.get_job(job_id)).data == {"a": 1}
