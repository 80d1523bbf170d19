"""The example project's blog: the reference host for blogimages. blogimages never edits these."""

from django.db import models
from django.urls import reverse


class Post(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    intro = models.TextField(blank=True)
    published = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("blog:post", args=[self.slug])


class Section(models.Model):
    post = models.ForeignKey(Post, models.CASCADE, related_name="sections")
    position = models.PositiveIntegerField(default=0)
    heading = models.CharField(max_length=200)
    body = models.TextField()

    class Meta:
        ordering = ["post", "position", "id"]

    def __str__(self):
        return self.heading
