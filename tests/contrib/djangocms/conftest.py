"""Fixtures of the django CMS integration's tests: real django CMS 5.1, djangocms-versioning,
djangocms-text, djangocms-stories and django-filer.

They run in their own pytest invocation with ``--ds=tests.settings_djangocms``; in the main
run (``tests.settings``, no django CMS) this folder is not collected.
"""

from __future__ import annotations

import functools

import pytest
from django.conf import settings

from tests.conftest import generated_result

if "cms" not in settings.INSTALLED_APPS:
    # The main run: django CMS is not installed there (see tests/settings_djangocms.py).
    collect_ignore_glob = ["test_*.py"]

LANGUAGE = "en"


def section_html(index: int) -> str:
    return f"<h2>Section {index}</h2><p>A <b>lighthouse</b> on a cliff at dusk, view {index}&nbsp;&amp; more</p>"


def version_of(content):
    from djangocms_versioning.models import Version

    return Version.objects.get_for_content(content)


def draft_of(post, user):
    """The post's draft content, made from the published version (the CMS's "Edit") if needed."""
    from djangocms_stories.models import PostContent
    from djangocms_versioning.constants import DRAFT

    content = PostContent.admin_manager.filter(post=post, language=LANGUAGE).current_content().get()
    version = version_of(content)
    return content if version.state == DRAFT else version.copy(user).content


def content_placeholder(content):
    from cms.utils.placeholder import get_placeholder_from_slot

    return get_placeholder_from_slot(content.placeholders, "content")


@pytest.fixture
def cms_admin(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("cmsadmin", "cmsadmin@example.com", "admin-pass")


@pytest.fixture
def stories_config(db):
    from djangocms_stories.cms_appconfig import StoriesConfig, config_defaults

    config = StoriesConfig(**{**config_defaults, "namespace": "blog", "use_placeholder": True, "url_patterns": "slug"})
    config.set_current_language(LANGUAGE)
    config.app_title = "Blog"
    config.object_name = "Post"
    config.save()
    return config


@pytest.fixture
def make_post(db, cms_admin, stories_config):
    """A djangocms-stories post whose content placeholder holds ``sections`` text plugins;
    published unless ``published=False``."""
    from cms.api import add_plugin
    from django.utils import timezone
    from djangocms_stories.models import Post, PostContent

    counter = iter(range(1, 1000))

    def make(sections=4, *, published=True, title="A walk by the sea", user=None):
        user = user or cms_admin
        number = next(counter)
        post = Post.objects.create(app_config=stories_config, author=user, date_published=timezone.now())
        content = PostContent.objects.with_user(user).create(
            post=post, language=LANGUAGE, title=title, slug=f"walk-{number}"
        )
        placeholder = content_placeholder(content)
        for index in range(1, sections + 1):
            add_plugin(placeholder, "TextPlugin", LANGUAGE, body=section_html(index))
        if published:
            version_of(content).publish(user)
        return post

    return make


@pytest.fixture
def blog_page(db, cms_admin, stories_config):
    """The home page and a published "Blog" page with the stories apphook (posts at /blog/<slug>/)."""
    from cms.api import create_page

    home = create_page("Home", "cmsblog/page.html", LANGUAGE, slug="home", created_by=cms_admin)
    version_of(home.get_admin_content(LANGUAGE)).publish(cms_admin)
    home.set_as_homepage(cms_admin)
    blog = create_page(
        "Blog",
        "cmsblog/page.html",
        LANGUAGE,
        slug="blog",
        parent=home,
        created_by=cms_admin,
        apphook="StoriesApp",
        apphook_namespace=stories_config.namespace,
    )
    version_of(blog.get_admin_content(LANGUAGE)).publish(cms_admin)
    reload_urls()
    return blog


def reload_urls():
    """Load the apphook's URLs in this process (the ApphookReloadMiddleware's job on a server)."""
    import importlib
    import sys

    from cms.appresolver import clear_app_resolvers
    from django.urls import clear_url_caches

    clear_app_resolvers()
    clear_url_caches()
    for module in ("cms.urls", settings.ROOT_URLCONF):
        if module in sys.modules:
            importlib.reload(sys.modules[module])


@pytest.fixture
def make_result(db):
    """tests/conftest.py's ``generated_result``, 1000×600 by default."""
    return functools.partial(generated_result, width=1000, height=600)


# approve and reject come from tests/conftest.py.


@pytest.fixture
def make_cms_editor(db):
    """A staff user with the given permissions (``app_label.codename``)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    def make(username="editor", perms=()):
        user = get_user_model().objects.create_user(username, f"{username}@example.com", "pass", is_staff=True)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return get_user_model().objects.get(pk=user.pk)  # no stale permission cache

    return make
