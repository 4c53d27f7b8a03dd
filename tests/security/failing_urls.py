"""The product's URLs plus one view that fails, to see the error page a bug would produce."""

from django.urls import path

from dms_admin.urls import urlpatterns as product_urlpatterns


def boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", boom), *product_urlpatterns]
