"""blogimages for Wagtail: sections are StreamField blocks, approved images become Wagtail images.

Add ``"blogimages.contrib.wagtail"`` to ``INSTALLED_APPS`` (after ``"blogimages"`` and the
Wagtail apps) and set ``BLOGIMAGES_HOST_ADAPTER =
"blogimages.contrib.wagtail.adapter.WagtailPageAdapter"``. Install with
``pip install "blogimages[wagtail]"``.
"""
