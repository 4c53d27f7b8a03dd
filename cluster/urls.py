from django.urls import path

from . import views

app_name = "cluster"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("clusters/<int:pk>/", views.cluster_detail, name="cluster_detail"),
    path("clusters/<int:pk>/replication/", views.cluster_replication, name="cluster_replication"),
    path("clusters/<int:pk>/replicate/", views.cluster_replicate, name="cluster_replicate"),
    path("clusters/<int:pk>/confirm-deletions/", views.cluster_confirm_deletions, name="cluster_confirm_deletions"),
    path("clusters/<int:pk>/maintenance/", views.cluster_maintenance, name="cluster_maintenance"),
    path("clusters/<int:pk>/switchover/", views.cluster_switchover, name="cluster_switchover"),
    path("clusters/<int:pk>/incidents/<uuid:incident_id>/", views.incident_detail, name="incident_detail"),
]
