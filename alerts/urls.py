from django.urls import path

from . import views

app_name = "alerts"

urlpatterns = [
    path("", views.event_list, name="event_list"),
    path("new/", views.event_list_new, name="event_list_new"),
    path("acknowledge/", views.event_acknowledge, name="event_acknowledge"),
    path("export.csv", views.event_export, name="event_export"),
    path("<int:pk>/", views.event_detail, name="event_detail"),
    path("rules/", views.rule_list, name="rule_list"),
    path("rules/new/<str:channel>/", views.rule_create, name="rule_create"),
    path("rules/<int:pk>/edit/", views.rule_edit, name="rule_edit"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
    path("rules/<int:pk>/test/", views.rule_test, name="rule_test"),
]
