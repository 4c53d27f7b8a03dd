from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from alerts.api.views import DeliveryViewSet, EventViewSet, NotificationRuleViewSet
from audit.api import AuditEntryViewSet
from cluster.api.views import (
    ClusterViewSet,
    DeploymentViewSet,
    IncidentViewSet,
    ReplicationJobViewSet,
    ServerViewSet,
    health,
)
from cluster.endpoints import go, metrics
from dms_admin.login import admin_login
from licensing.api.views import LicenseViewSet, PartNumberViewSet, SoftwareModuleViewSet

router = DefaultRouter()
router.register("servers", ServerViewSet)
router.register("clusters", ClusterViewSet)
router.register("deployments", DeploymentViewSet)
router.register("replication-jobs", ReplicationJobViewSet)
router.register("incidents", IncidentViewSet)
router.register("licenses", LicenseViewSet)
router.register("modules", SoftwareModuleViewSet)
router.register("part-numbers", PartNumberViewSet)
router.register("events", EventViewSet)
router.register("notification-rules", NotificationRuleViewSet)
router.register("deliveries", DeliveryViewSet)
router.register("audit", AuditEntryViewSet)

handler400 = "dms_admin.api.bad_request"
handler404 = "dms_admin.api.not_found"
handler500 = "dms_admin.api.server_error"

urlpatterns = [
    path("api/v1/health/", health, name="health"),
    path("go/<str:name>/", go, name="go"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/login/", admin_login, name="admin_login"),  # one sign-in page: the one below
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),  # locked out per (user, address) by axes
    # Of django.contrib.auth.urls only what a logged-in user needs: no anonymous password reset
    # (administrators reset passwords with `manage.py changepassword`).
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("alerts/", include("alerts.urls")),
    path("audit/", include("audit.urls")),
    path("", include("cluster.urls")),
]
