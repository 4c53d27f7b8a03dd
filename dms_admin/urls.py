from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from alerts.api.views import EventViewSet
from cluster.api.views import ClusterViewSet, DeploymentViewSet, ServerViewSet, health
from licensing.api.views import LicenseViewSet, PartNumberViewSet, SoftwareModuleViewSet

router = DefaultRouter()
router.register("servers", ServerViewSet)
router.register("clusters", ClusterViewSet)
router.register("deployments", DeploymentViewSet)
router.register("licenses", LicenseViewSet)
router.register("modules", SoftwareModuleViewSet)
router.register("part-numbers", PartNumberViewSet)
router.register("events", EventViewSet)

urlpatterns = [
    path("api/v1/health/", health, name="health"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
    path("", include("django.contrib.auth.urls")),
]
