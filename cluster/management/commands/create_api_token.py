from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cluster.models import ApiToken


class Command(BaseCommand):
    help = (
        "Make an API token for USERNAME and print it, once: only its hash is stored. "
        "Use it as `Authorization: Token <key>`."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--rotate", action="store_true", help="Replace an existing token with a new one.")

    def handle(self, *args, username, rotate, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist as error:
            raise CommandError(f"No user named {username!r}.") from error
        existing = ApiToken.objects.filter(user=user).first()
        if existing is not None and not rotate:
            raise CommandError(
                f"{username} already has an API token ({existing.prefix}…, made "
                f"{existing.created_at:%Y-%m-%d %H:%M} UTC). "
                "It is stored hashed and cannot be shown again; --rotate replaces it."
            )
        self.stdout.write(ApiToken.issue(user))
