"""Projects, their record schemas, and renaming what a project holds."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.schemas.text import Description, FieldName, Name, RequiredName, display_filename

#: Most fields a record schema may have (each is a column and a part of every extraction prompt).
MAX_SCHEMA_FIELDS = 50

#: What a field means, in a sentence or two (shown to mLLM extractors and in the UI).
FieldDescription = Annotated[Description, Field(max_length=1000)]
#: A value as printed, one line.
FieldExample = Annotated[Name, Field(max_length=200)]


class RecordFieldIn(BaseModel):
    """One field of a record schema as a client defines it."""

    name: FieldName
    description: FieldDescription = ""
    # Strict: JSON 0 or "yes" is not a boolean (a lax bool would take them).
    required: bool = Field(default=False, strict=True, description="every entry gives it")
    example: FieldExample = ""


class RecordFieldPublic(BaseModel):
    """One field of a record schema."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str
    required: bool
    example: str


SchemaFields = Annotated[
    list[RecordFieldIn],
    Field(min_length=1, max_length=MAX_SCHEMA_FIELDS),
]


class ProjectCreate(BaseModel):
    """A new project; the schema defaults to the city-directory fields."""

    name: RequiredName
    description: Description = ""
    schema_fields: list[FieldName] | None = Field(
        default=None,
        max_length=MAX_SCHEMA_FIELDS,
        json_schema_extra={"uniqueItems": True},
        description="the record's field names, distinct; the city-directory ones when left out "
        "(or give `record_fields` with their meaning instead)",
    )
    record_fields: SchemaFields | None = Field(
        default=None, description="the record's fields with their meaning, in column order"
    )

    @model_validator(mode="after")
    def _one_schema(self) -> "ProjectCreate":
        if self.schema_fields is not None and self.record_fields is not None:
            raise ValueError("give schema_fields or record_fields, not both")
        return self


class ProjectUpdate(BaseModel):
    """A project's new name and/or description (what is left out stays)."""

    name: RequiredName | None = None
    description: Description | None = None


class ProjectPublic(BaseModel):
    """A project as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    #: The current schema's field names, in column order.
    schema_fields: list[str]
    #: The current schema's version (runs record the version they used).
    schema_version: int = 1
    created_at: datetime


class SchemaPublic(BaseModel):
    """A version of a project's record schema."""

    version: int
    fields: list[RecordFieldPublic]
    author: str
    #: None for the first version of a project made before schemas had versions.
    created_at: datetime | None


class SchemaUpdate(BaseModel):
    """A project's new record schema: its fields in column order."""

    fields: SchemaFields


def _filename(value: str) -> str:
    cleaned = display_filename(value, "")
    if not cleaned:
        raise ValueError("must name the file")
    return cleaned


class DocumentUpdate(BaseModel):
    """A document's new display name."""

    filename: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_filename)]


class RunUpdate(BaseModel):
    """A run's new name (its configuration never changes)."""

    name: Name
