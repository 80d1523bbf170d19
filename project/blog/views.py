from django.shortcuts import get_object_or_404, render

from blogimages.rendering import approved_images_for_post

from .models import Post


def post_list(request):
    return render(request, "blog/post_list.html", {"posts": Post.objects.filter(published=True)})


def post_detail(request, slug):
    post = get_object_or_404(Post, slug=slug, published=True)
    sections = list(post.sections.all())
    # One query for every section's approved image, however many sections there are.
    images = approved_images_for_post(post)
    return render(request, "blog/post_detail.html", {"post": post, "sections": sections, "images": images})
