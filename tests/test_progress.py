"""lego.progress: the one step driver and the sub-job scaling both pipelines and Blender use."""

from image2lego.lego.progress import Progress, run, scaled


def _job(n):
    for i in range(n):
        yield Progress(i / n, f"step {i}")
    return f"made {n}"


def test_run_returns_the_result_and_reports_every_step():
    seen = []
    assert run(_job(4), seen.append) == "made 4"
    assert [p.message for p in seen] == ["step 0", "step 1", "step 2", "step 3"]
    assert run(_job(0)) == "made 0"


def test_scaled_maps_fractions_and_passes_the_result_through():
    def outer():
        r = yield from scaled(_job(4), 0.5, 0.9)
        yield Progress(1.0, r)
        return r

    seen = []
    assert run(outer(), seen.append) == "made 4"
    assert [round(p.fraction, 3) for p in seen] == [0.5, 0.6, 0.7, 0.8, 1.0]
    assert seen[-1].message == "made 4"
