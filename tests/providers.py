"""Small providers used by the queue tests to reach each path of the job."""

from __future__ import annotations

from blogimages.exceptions import PermanentProviderError, TransientProviderError
from blogimages.providers.base import BaseProvider, GeneratedImage
from blogimages.providers.placeholder import render_placeholder

CALLS: dict[str, int] = {}


class FlakyProvider(BaseProvider):
    """Fails ``fail_times`` times with a transient (or permanent) error, then succeeds."""

    default_options = {"fail_times": 1, "permanent": False, "message": "server busy", "retry_after": 0}

    def generate(self, request, reporter):
        CALLS[self.alias] = CALLS.get(self.alias, 0) + 1
        if CALLS[self.alias] <= self.options["fail_times"]:
            error = PermanentProviderError if self.options["permanent"] else TransientProviderError
            raise error(self.options["message"], retry_after=self.options["retry_after"])
        return GeneratedImage(render_placeholder(request, 7), seed=7, provider=self.alias)


class SelfCancellingProvider(BaseProvider):
    """Cancels its own result through the service layer mid-run, as an editor would."""

    def generate(self, request, reporter):
        from blogimages import services
        from blogimages.exceptions import GenerationCancelled
        from blogimages.models import ImageGenerationResult

        reporter.progress(50, "half way")
        services.cancel(ImageGenerationResult.objects.get(pk=request.result_id))
        reporter._last_check = 0  # check now rather than after the throttle interval
        if reporter.cancelled():
            raise GenerationCancelled("cancelled")
        raise AssertionError("the cancel was not seen")


class GarbageProvider(BaseProvider):
    """Returns bytes that are not an image."""

    def generate(self, request, reporter):
        return GeneratedImage(b"<html>not an image</html>", provider=self.alias)


class ExplodingProvider(BaseProvider):
    def generate(self, request, reporter):
        raise ValueError("division by cucumber")
