"""blogimages for django CMS 5: sections are the text plugins of a placeholder, approved
images become django-filer images shown by a "Section image" plugin.

Add ``"blogimages.contrib.djangocms"`` to ``INSTALLED_APPS`` (after ``"blogimages"``,
``"cms"`` and ``"filer"``) and set ``BLOGIMAGES_HOST_ADAPTER =
"blogimages.contrib.djangocms.adapter.DjangoCMSAdapter"``. Install with
``pip install "blogimages[djangocms]"``.
"""
