"""A JSON body's values must have the types the schema gives them. DRF reads leniently: 1 for
true, "5" for 5, 5 for "5", which the schema calls invalid, so a client that sends them works by
accident. (The API parses JSON only: settings.REST_FRAMEWORK.)"""

from rest_framework import serializers

# (field classes, the JSON types they take, in words); the first match decides.
JSON_TYPES = (
    ((serializers.BooleanField,), (bool,), "true or false"),
    ((serializers.IntegerField, serializers.PrimaryKeyRelatedField), (int,), "a whole number"),
    ((serializers.FloatField,), (int, float), "a number"),
    ((serializers.ListField, serializers.ManyRelatedField, serializers.MultipleChoiceField), (list,), "a list"),
    (
        (
            serializers.CharField,
            serializers.DateField,
            serializers.DateTimeField,
            serializers.TimeField,
            serializers.DurationField,
        ),
        (str,),
        "a string",
    ),
)


def type_problem(field: serializers.Field, value) -> str | None:
    """Why `value` is not of `field`'s JSON type, or None (also for fields of any type, as JSONField)."""
    if value is None:
        return None  # DRF says whether the field may be null
    if isinstance(field, serializers.ChoiceField) and not isinstance(field, serializers.MultipleChoiceField):
        types = tuple({type(choice) for choice in field.choices}) or (str,)
        if isinstance(value, types) and not isinstance(value, bool):
            return None
        return f"Must be one of: {', '.join(map(str, field.choices))}."
    for classes, types, words in JSON_TYPES:
        if not isinstance(field, classes):
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"Must be {words}."
        if isinstance(value, list):
            child = getattr(field, "child", None) or getattr(field, "child_relation", None)
            if isinstance(field, serializers.MultipleChoiceField):
                child = serializers.CharField()
            problems = [type_problem(child, item) for item in value] if child is not None else []
            return next((f"Item {index}: {p[0].lower()}{p[1:]}" for index, p in enumerate(problems) if p), None)
        return None
    return None


class JsonTypesMixin:
    """For a serializer: a JSON body with a value of the wrong type is refused, naming the field."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {}
            for name, value in data.items():
                field = self.fields.get(name)
                problem = None if field is None or field.read_only else type_problem(field, value)
                if problem:
                    errors[name] = [problem]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
