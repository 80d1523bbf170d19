"""Batched candidates: N candidates of one section as one ComfyUI prompt with batch_size N.

Against the fake ComfyUI (``tests/servers/comfyui.py``), which makes one image per batch
index and runs a batch of N in ``run_time * (1 + 0.25 * (N - 1))``, through real RQ jobs.
"""

from __future__ import annotations

import copy
import io
import json
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from PIL import Image

from blogimages import services
from blogimages.comfyui.workflows import SHIPPED_DIR
from blogimages.models import ErrorKind, ImageGenerationResult, ResultStatus
from tests.servers.comfyui import FakeComfyUI, wait_until

PROMPT = "A lighthouse on a cliff at dusk"


@pytest.fixture(autouse=True)
def clean_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def _sdxl_without_batch_size() -> dict:
    """The shipped SDXL workflow, its mapping less ``batch_size``: an operator's workflow
    that cannot batch."""
    mapping = json.loads((SHIPPED_DIR / "sdxl.mapping.json").read_text())
    del mapping["parameters"]["batch_size"]
    return {**mapping, "graph": json.loads((SHIPPED_DIR / "sdxl.json").read_text())}


@pytest.fixture
def comfyui(settings):
    """A fake ComfyUI and a ``comfyui`` provider alias pointed at it (``sdxl`` by default;
    ``single`` is SDXL without a batch_size mapping)."""
    with FakeComfyUI(run_time=0.2) as server:
        settings.BLOGIMAGES_PROVIDERS = {
            **settings.BLOGIMAGES_PROVIDERS,
            "comfyui": {
                "BACKEND": "blogimages.providers.comfyui.ComfyUIProvider",
                "OPTIONS": {
                    "urls": [server.url],
                    "workflow": "sdxl",
                    "poll_interval": 0.2,
                    "workflows": {"single": _sdxl_without_batch_size()},
                },
            },
        }
        yield server


def ask(section, *, candidates=4, provider="comfyui", model="", **overrides):
    spec = services.GenerationSpec(
        prompt=PROMPT,
        providers=[provider],
        model=model,
        overrides={"width": 320, "height": 256, "steps": 4, **overrides},
        candidates=candidates,
    )
    return services.request_generation(spec, section=section)


def pixels(result: ImageGenerationResult) -> bytes:
    with result.image.open("rb") as stored:
        return Image.open(io.BytesIO(stored.read())).convert("RGB").tobytes()


def fresh(results):
    return [ImageGenerationResult.objects.get(pk=result.pk) for result in results]


def batch_sizes(server: FakeComfyUI) -> list[int]:
    return [graph["5"]["inputs"]["batch_size"] for graph in server.prompts.values()]


@pytest.mark.django_db
def test_a_batch_of_n_becomes_n_results(comfyui, make_post, run_worker, django_capture_on_commit_callbacks):
    section = make_post(sections=1).sections.first()
    with django_capture_on_commit_callbacks(execute=True):
        results = ask(section)
    assert len(results) == 4 and len({result.group for result in results}) == 1
    assert len({result.job_id for result in fresh(results)}) == 1  # one job for the four

    assert run_worker() == 1
    (graph,) = comfyui.prompts.values()
    assert graph["5"]["inputs"]["batch_size"] == 4  # one prompt, one model pass
    results = fresh(results)
    assert [result.status for result in results] == [ResultStatus.SUCCEEDED] * 4, [r.error_message for r in results]
    # Each has its own image: the one at its batch index, named by its own output file.
    assert [result.provider_meta["batch_index"] for result in results] == [0, 1, 2, 3]
    assert {result.provider_meta["batch_size"] for result in results} == {4}
    assert len({pixels(result) for result in results}) == 4
    assert len({result.image.name for result in results}) == 4
    outputs = [result.provider_meta["output"]["filename"] for result in results]
    assert len(set(outputs)) == 4
    # All share the base seed that was sent and the prompt; the batch index picks the noise.
    assert {result.seed for result in results} == {graph["3"]["inputs"]["seed"]}
    assert {result.remote_id for result in results} == set(comfyui.prompts)
    # Each is reviewable on its own.
    review = services.approve(results[2])
    assert review.approved_result_id == results[2].pk
    actions = services.result_actions(results[1], {"generate": True, "review": True})
    assert {"approve", "reject", "regenerate", "regenerate-same-seed"} <= actions


@pytest.mark.django_db
def test_same_seed_makes_that_candidate_again(comfyui, make_post, run_worker, django_capture_on_commit_callbacks):
    section = make_post(sections=1).sections.first()
    with django_capture_on_commit_callbacks(execute=True):
        results = ask(section)
    assert run_worker() == 1
    third = fresh(results)[2]
    with django_capture_on_commit_callbacks(execute=True):
        again = services.regenerate(third, same_seed=True)
    assert run_worker() == 1
    again.refresh_from_db()
    assert again.status == ResultStatus.SUCCEEDED, again.error_message
    # Image 2 of the seed: a batch of 3 whose last image is kept, the same pixels.
    assert batch_sizes(comfyui) == [4, 3]
    assert (again.seed, again.provider_meta["batch_index"]) == (third.seed, 2)
    assert pixels(again) == pixels(third)
    # A new seed is one plain image.
    with django_capture_on_commit_callbacks(execute=True):
        other = services.regenerate(third)
    assert run_worker() == 1
    other.refresh_from_db()
    assert batch_sizes(comfyui)[-1] == 1 and "batch_index" not in other.provider_meta


@pytest.mark.django_db
def test_candidates_of_a_provider_that_cannot_batch_are_separate_jobs(
    comfyui, make_post, run_worker, django_capture_on_commit_callbacks
):
    section = make_post(sections=1).sections.first()
    with django_capture_on_commit_callbacks(execute=True):
        placeholders = ask(section, provider="placeholder", seed=7)
        unbatched = ask(section, model="single")
    assert run_worker() == 8
    placeholders, unbatched = fresh(placeholders), fresh(unbatched)
    assert {result.status for result in placeholders + unbatched} == {ResultStatus.SUCCEEDED}
    # A pinned seed counts up, so the candidates differ as a batch's would.
    assert [result.seed for result in placeholders] == [7, 8, 9, 10]
    assert batch_sizes(comfyui) == [1, 1, 1, 1]
    assert len({result.remote_id for result in unbatched}) == 4
    assert not any("batch_index" in result.provider_meta for result in placeholders + unbatched)


@pytest.mark.django_db
def test_the_number_of_candidates_is_bounded(settings, make_post):
    settings.BLOGIMAGES_MAX_CANDIDATES = 3
    section = make_post(sections=1).sections.first()
    for wrong in (0, 4, "2", True):
        with pytest.raises(ValidationError) as caught:
            ask(section, provider="placeholder", candidates=wrong)
        assert "BLOGIMAGES_MAX_CANDIDATES" in caught.value.message_dict["candidates"][0]
    assert not ImageGenerationResult.objects.exists()


@pytest.mark.django_db
def test_cancelling_a_queued_candidate_leaves_the_batch_to_the_others(
    comfyui, make_post, run_worker, django_capture_on_commit_callbacks
):
    section = make_post(sections=1).sections.first()
    with django_capture_on_commit_callbacks(execute=True):
        results = ask(section)
    services.cancel(fresh(results)[3])
    assert run_worker() == 1  # the batch job was not cancelled
    results = fresh(results)
    assert [result.status for result in results] == [ResultStatus.SUCCEEDED] * 3 + [ResultStatus.CANCELLED]
    assert not results[3].image
    assert batch_sizes(comfyui) == [3]  # nobody wants image 3 any more

    # Once every candidate is cancelled, so is the job: nothing runs.
    with django_capture_on_commit_callbacks(execute=True):
        results = ask(section)
    for result in fresh(results):
        services.cancel(result)
    assert run_worker() == 0
    assert len(comfyui.prompts) == 1


@pytest.mark.django_db(transaction=True)
# The cancel comes from a second thread while the worker writes: SQLite's shared test
# database answers "table is locked" to one of them (seen in CI), PostgreSQL waits.
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_cancelling_running_candidates(comfyui, make_post, run_worker):
    """One cancelled mid-run: the batch runs on, its image is discarded. All cancelled: the
    prompt is stopped."""
    comfyui.run_time = 1.0
    section = make_post(sections=1).sections.first()
    results = ask(section)

    def cancel_when_running(which):
        wait_until(lambda: comfyui.started and comfyui.running, timeout=20)
        for result in fresh(which):
            services.cancel(result)

    canceller = threading.Thread(target=cancel_when_running, args=(results[1:2],))
    canceller.start()
    assert run_worker() == 1
    canceller.join()
    results = fresh(results)
    assert [result.status for result in results] == [
        ResultStatus.SUCCEEDED,
        ResultStatus.CANCELLED,
        ResultStatus.SUCCEEDED,
        ResultStatus.SUCCEEDED,
    ]
    assert not results[1].image and not comfyui.interrupts
    assert batch_sizes(comfyui) == [4]

    results = ask(section)
    canceller = threading.Thread(target=cancel_when_running, args=(results,))
    canceller.start()
    assert run_worker() == 1
    canceller.join()
    assert {result.status for result in fresh(results)} == {ResultStatus.CANCELLED}
    last = list(comfyui.prompts)[-1]
    wait_until(lambda: last in comfyui.history)
    assert comfyui.history[last]["status"]["status_str"] == "error"  # interrupted
    assert not any(result.image for result in fresh(results))


@pytest.mark.django_db
def test_a_failed_batch_fails_every_candidate_with_the_same_sentence(
    comfyui, make_post, run_worker, django_capture_on_commit_callbacks
):
    section = make_post(sections=1).sections.first()
    with django_capture_on_commit_callbacks(execute=True):
        results = ask(section, model="sdxl:broken_model.safetensors")
    assert run_worker() == 1
    results = fresh(results)
    assert {result.status for result in results} == {ResultStatus.FAILED}
    assert {result.error_kind for result in results} == {ErrorKind.PERMANENT}
    (message,) = {result.error_message for result in results}
    assert "broken_model.safetensors" in message


@pytest.mark.django_db
def test_requeue_of_one_failed_candidate_runs_it_alone(
    settings, comfyui, make_post, run_worker, django_capture_on_commit_callbacks
):
    settings.BLOGIMAGES_MAX_ATTEMPTS = 1
    section = make_post(sections=1).sections.first()
    with django_capture_on_commit_callbacks(execute=True):
        results = ask(section)
    comfyui.fail_next(1, status=503)
    assert run_worker() == 1
    results = fresh(results)
    assert {result.status for result in results} == {ResultStatus.FAILED}
    assert len({result.error_message for result in results}) == 1
    (seed,) = {result.seed for result in results}
    assert seed is not None  # recorded before the prompt was sent

    with django_capture_on_commit_callbacks(execute=True):
        services.requeue(results[2])
    assert run_worker() == 1
    results = fresh(results)
    assert [result.status for result in results] == [ResultStatus.FAILED] * 2 + [
        ResultStatus.SUCCEEDED,
        ResultStatus.FAILED,
    ]
    # Alone: its own job and prompt, image 2 of the same seed (a batch of 3, the last kept).
    assert batch_sizes(comfyui) == [3]
    assert (results[2].seed, results[2].provider_meta["batch_index"]) == (seed, 2)
    assert not results[2].job_id.startswith(services.BATCH_JOB_PREFIX)


@pytest.mark.django_db
def test_the_api_and_the_review_page_ask_for_candidates(
    comfyui, make_post, admin_user, client, django_capture_on_commit_callbacks
):
    post = make_post(sections=1)
    section = post.sections.first()
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/images/generate",
            data={"prompt": PROMPT, "provider": "comfyui", "candidates": 3, "section": section.pk},
            content_type="application/json",
        )
    assert response.status_code == 202, response.content
    data = response.json()
    assert len(data["results"]) == 3
    rows = ImageGenerationResult.objects.filter(pk__in=[item["id"] for item in data["results"]])
    assert {str(row.group) for row in rows} == {data["group"]}
    assert sorted(row.params["batch_index"] for row in rows) == [0, 1, 2]

    bad = client.post(
        "/api/v1/images/generate",
        data={"prompt": PROMPT, "provider": "comfyui", "candidates": 99},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "candidates" in json.dumps(bad.json())

    review_url = f"/admin/blog/post/{post.pk}/images/"
    page = client.get(review_url)
    assert b'name="candidates"' in page.content
    assert b'title="which image of the seed' in page.content  # each candidate shows its place in the batch
    form = {"do": "generate-section", "section": str(section.pk), "provider": "comfyui", "candidates": "2"}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(review_url, form)
    assert ImageGenerationResult.objects.count() == 5


def test_the_shipped_workflows_map_batch_size():
    from blogimages.comfyui.workflows import shipped_workflows

    for name, workflow in shipped_workflows().items():
        (binding,) = workflow.parameters["batch_size"]
        assert workflow.graph[binding.node]["class_type"].startswith("Empty"), name


def test_the_fake_runs_a_batch_in_less_than_n_single_runs():
    server = FakeComfyUI(run_time=1.0)
    graph = copy.deepcopy(json.loads((SHIPPED_DIR / "sdxl.json").read_text()))
    graph["5"]["inputs"]["batch_size"] = 4
    assert server._run_time(graph, {}) == pytest.approx(1.75)
